import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CatchUp,
  DEFAULT_NONE_GRACE_MS,
  deadline,
  MISSED_DETAIL,
  type PlanInput,
  type PlannedExecution,
  planExecutions,
  SCAN_LIMIT,
  TIME_HORIZON_CAP,
} from "../../src/schedule/plan.js";
import { compileSpec, type Grid } from "../../src/schedule/spec.js";

/**
 * Materialization planning (src/schedule/plan.ts), pure: which executions a
 * pass writes, in which state, with which deadline, and where the cursor goes.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const T0 = new Date("2026-01-05T10:00:00.000Z");
const t = (ms: number) => new Date(T0.getTime() + ms);
const iso = (dates: Date[]) => dates.map((d) => d.toISOString());

const everyMinute = compileSpec({ every: "1m", anchor: T0, timezone: "UTC" });
const everyHour = compileSpec({ every: "1h", anchor: T0, timezone: "UTC" });

function plan(overrides: Partial<PlanInput> & Pick<PlanInput, "now">) {
  return planExecutions({
    grid: everyMinute,
    cursor: null,
    horizon: 3,
    horizonMs: 0,
    liveFuture: 0,
    catchUp: "latest",
    catchUpWindowMs: null,
    ...overrides,
  });
}

const occurrences = (list: PlannedExecution[]) => iso(list.map((e) => e.occurrenceAt));
const inState = (list: PlannedExecution[], state: PlannedExecution["state"]) =>
  occurrences(list.filter((e) => e.state === state));

describe("baseline (cursor null)", () => {
  it("fires nothing at or before now and plans `horizon` future occurrences", () => {
    const p = plan({ now: t(30_000), horizon: 3 });
    expect(occurrences(p.executions)).toEqual(iso([t(MINUTE), t(2 * MINUTE), t(3 * MINUTE)]));
    expect(p.executions.every((e) => e.state === "scheduled" && e.note === null)).toBe(true);
    expect(p.cursor?.toISOString()).toBe(t(4 * MINUTE).toISOString());
    expect(p.more).toBe(false);
  });

  it("an occurrence exactly at now is not fired", () => {
    const p = plan({ now: T0, horizon: 2 });
    expect(occurrences(p.executions)).toEqual(iso([t(MINUTE), t(2 * MINUTE)]));
    expect(p.cursor?.toISOString()).toBe(t(3 * MINUTE).toISOString());
  });

  it("live future executions count toward the horizon", () => {
    const p = plan({ now: t(30_000), horizon: 5, liveFuture: 4 });
    expect(occurrences(p.executions)).toEqual(iso([t(MINUTE)]));
    expect(p.cursor?.toISOString()).toBe(t(2 * MINUTE).toISOString());
  });

  it("future deadlines follow the policy (latest: the next occurrence)", () => {
    const p = plan({ now: t(30_000), horizon: 2 });
    expect(p.executions.map((e) => e.deadlineAt?.toISOString())).toEqual(
      iso([t(2 * MINUTE), t(3 * MINUTE)]),
    );
  });
});

describe("horizon", () => {
  it("tops up to `horizon` live future executions, from the cursor", () => {
    // 10:02 and 10:03 are live; the cursor is at 10:04.
    const p = plan({ now: t(90_000), cursor: t(4 * MINUTE), liveFuture: 2, horizon: 3 });
    expect(occurrences(p.executions)).toEqual(iso([t(4 * MINUTE)]));
    expect(p.cursor?.toISOString()).toBe(t(5 * MINUTE).toISOString());
    expect(p.more).toBe(false);
  });

  it("a full horizon plans nothing and leaves the cursor where it was", () => {
    for (const liveFuture of [3, 4]) {
      const p = plan({ now: t(90_000), cursor: t(4 * MINUTE), liveFuture, horizon: 3 });
      expect(p.executions).toEqual([]);
      expect(p.cursor?.toISOString()).toBe(t(4 * MINUTE).toISOString());
      expect(p.more).toBe(false);
    }
  });

  it("a larger horizon plans that many", () => {
    const p = plan({ now: t(30_000), horizon: 50 });
    expect(p.executions).toHaveLength(50);
    expect(p.cursor?.toISOString()).toBe(t(51 * MINUTE).toISOString());
  });

  it("a grid that ends leaves a null cursor and plans what is left", () => {
    const list = [t(MINUTE), t(2 * MINUTE)];
    const finite: Grid = { next: (after) => list.find((d) => d > after) ?? null };
    const p = plan({ grid: finite, now: T0, horizon: 5 });
    expect(occurrences(p.executions)).toEqual(iso(list));
    expect(p.cursor).toBeNull();
    expect(p.more).toBe(false);
    // The last one has no next occurrence: latest without a window has no deadline.
    expect(p.executions[1]?.deadlineAt).toBeNull();
  });
});

describe("time horizon (horizonMs)", () => {
  const SECOND = 1_000;
  const everySecond = compileSpec({ every: "1s", anchor: T0, timezone: "UTC" });

  it("plans every occurrence up to now + horizonMs, beyond the count", () => {
    const now = t(500);
    const p = plan({ grid: everySecond, now, horizon: 3, horizonMs: 60 * SECOND });
    // T0+1s .. T0+60s are within now+60.5s: 60 of them.
    expect(p.executions).toHaveLength(60);
    expect(p.executions.at(-1)?.occurrenceAt.toISOString()).toBe(t(60 * SECOND).toISOString());
    expect(p.cursor?.toISOString()).toBe(t(61 * SECOND).toISOString());
  });

  it("the count still wins when it reaches further", () => {
    const p = plan({ now: t(30_000), horizon: 5, horizonMs: 60 * SECOND });
    expect(p.executions).toHaveLength(5);
  });

  it("tops up only what time moved on: one more a second for a per-second schedule", () => {
    // Planned at T0+0.5s: T0+1s .. T0+60s. A second later, 2s .. 60s are still ahead.
    const p = plan({
      grid: everySecond,
      now: t(1_500),
      cursor: t(61 * SECOND),
      liveFuture: 59,
      horizon: 3,
      horizonMs: 60 * SECOND,
    });
    expect(occurrences(p.executions)).toEqual(iso([t(61 * SECOND)]));
    expect(p.cursor?.toISOString()).toBe(t(62 * SECOND).toISOString());
  });

  it("stops at TIME_HORIZON_CAP future executions, whatever horizonMs asks", () => {
    const p = plan({ grid: everySecond, now: t(500), horizon: 3, horizonMs: 3_600 * SECOND });
    expect(p.executions).toHaveLength(TIME_HORIZON_CAP);
    const topUp = plan({
      grid: everySecond,
      now: t(500),
      cursor: p.cursor,
      liveFuture: TIME_HORIZON_CAP,
      horizon: 3,
      horizonMs: 3_600 * SECOND,
    });
    expect(topUp.executions).toHaveLength(0);
  });

  it("property: the planned executions reach now + horizonMs, and never more than the cap or the count", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 0, max: 900 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 999 }),
        (stepSeconds, horizonSeconds, horizon, offsetMs) => {
          const grid = compileSpec({ every: `${stepSeconds}s`, anchor: T0, timezone: "UTC" });
          const now = t(offsetMs);
          const horizonMs = horizonSeconds * SECOND;
          const p = plan({ grid, now, horizon, horizonMs });
          const count = p.executions.length;
          expect(count).toBeLessThanOrEqual(Math.max(horizon, TIME_HORIZON_CAP));
          expect(count).toBeGreaterThanOrEqual(horizon);
          const last = p.executions.at(-1)?.occurrenceAt.getTime() ?? 0;
          // Unless capped, the plan reaches the end of the time horizon.
          if (count < TIME_HORIZON_CAP) {
            expect(last + stepSeconds * SECOND).toBeGreaterThan(now.getTime() + horizonMs);
          }
          // Nothing beyond what the count or the time asks.
          if (count > horizon) {
            const beforeLast = p.executions.at(-2)?.occurrenceAt.getTime() ?? 0;
            expect(beforeLast).toBeLessThanOrEqual(now.getTime() + horizonMs);
          }
        },
      ),
    );
  });
});

describe("catch-up after a downtime", () => {
  // Hourly from 10:00; the orchestrator was away from 09:59 to 13:30, so
  // 10:00, 11:00, 12:00 and 13:00 came due with no row.
  const now = t(3.5 * HOUR);
  const past = iso([T0, t(HOUR), t(2 * HOUR), t(3 * HOUR)]);
  const future = iso([t(4 * HOUR), t(5 * HOUR), t(6 * HOUR)]);
  const downtime = (catchUp: CatchUp, catchUpWindowMs: number | null) =>
    plan({ grid: everyHour, cursor: T0, now, catchUp, catchUpWindowMs });

  it("all, no window: every missed occurrence runs, without a deadline", () => {
    const p = downtime("all", null);
    expect(inState(p.executions, "scheduled")).toEqual([...past, ...future]);
    expect(inState(p.executions, "missed")).toEqual([]);
    expect(p.executions.slice(0, 4).every((e) => e.deadlineAt === null)).toBe(true);
    expect(p.cursor?.toISOString()).toBe(t(7 * HOUR).toISOString());
  });

  it("all, with a window: those past their window are missed, the rest run", () => {
    // Window 2h30m: 10:00 (until 12:30) and 11:00 (until 13:30 = now, so
    // already over) are missed; 12:00 and 13:00 run.
    const p = downtime("all", 2.5 * HOUR);
    expect(inState(p.executions, "missed")).toEqual(past.slice(0, 2));
    expect(inState(p.executions, "scheduled")).toEqual([...past.slice(2), ...future]);
    const byOcc = new Map(p.executions.map((e) => [e.occurrenceAt.toISOString(), e]));
    expect(byOcc.get(past[2] as string)?.deadlineAt?.toISOString()).toBe(
      t(4.5 * HOUR).toISOString(),
    );
    expect(byOcc.get(past[0] as string)?.deadlineAt).toBeNull();
    expect(byOcc.get(past[0] as string)?.note).toBeNull();
  });

  it("latest, no window: only the latest runs (until the next occurrence)", () => {
    const p = downtime("latest", null);
    expect(inState(p.executions, "missed")).toEqual(past.slice(0, 3));
    expect(inState(p.executions, "scheduled")).toEqual([past[3], ...future]);
    const latest = p.executions.find((e) => e.occurrenceAt.toISOString() === past[3]);
    expect(latest?.deadlineAt?.toISOString()).toBe(t(4 * HOUR).toISOString());
  });

  it("latest, with a window: the latest runs only while inside its window", () => {
    const inside = downtime("latest", 45 * MINUTE);
    expect(inState(inside.executions, "scheduled")).toEqual([past[3], ...future]);
    expect(
      inside.executions
        .find((e) => e.occurrenceAt.toISOString() === past[3])
        ?.deadlineAt?.toISOString(),
    ).toBe(t(3.75 * HOUR).toISOString());
    const outside = downtime("latest", 20 * MINUTE);
    expect(inState(outside.executions, "missed")).toEqual(past);
    expect(inState(outside.executions, "scheduled")).toEqual(future);
  });

  it("none, no window: nothing missed runs (beyond the default grace)", () => {
    const p = downtime("none", null);
    expect(inState(p.executions, "missed")).toEqual(past);
    expect(inState(p.executions, "scheduled")).toEqual(future);
    // Future ones get the grace as their deadline.
    expect(p.executions.find((e) => e.state === "scheduled")?.deadlineAt?.toISOString()).toBe(
      t(4 * HOUR + DEFAULT_NONE_GRACE_MS).toISOString(),
    );
  });

  it("none: an occurrence only seconds late (inside the grace) still runs", () => {
    const p = plan({
      grid: everyHour,
      cursor: t(3 * HOUR),
      now: t(3 * HOUR + 30_000),
      catchUp: "none",
      catchUpWindowMs: null,
    });
    expect(inState(p.executions, "scheduled")[0]).toBe(past[3]);
    expect(p.executions[0]?.deadlineAt?.toISOString()).toBe(
      t(3 * HOUR + DEFAULT_NONE_GRACE_MS).toISOString(),
    );
  });

  it("none, with a window: the window replaces the grace", () => {
    const p = downtime("none", 45 * MINUTE);
    expect(inState(p.executions, "missed")).toEqual(past.slice(0, 3));
    expect(inState(p.executions, "scheduled")).toEqual([past[3], ...future]);
  });

  it("a deadline equal to now counts as passed", () => {
    // 13:00 + 30 min window = 13:30 = now.
    const p = downtime("all", 30 * MINUTE);
    expect(inState(p.executions, "missed")).toEqual(past);
  });

  it("missed rows come first, then the catch-up runs, then the future, in occurrence order", () => {
    for (const [policy, window] of [
      ["all", 2.5 * HOUR],
      ["latest", null],
      ["none", null],
    ] as [CatchUp, number | null][]) {
      const p = downtime(policy, window);
      expect(occurrences(p.executions)).toEqual([...past, ...future]);
    }
  });
});

describe("deadline()", () => {
  const occ = t(0);
  const next = t(HOUR);
  it.each([
    ["all", null, next, null],
    ["all", null, null, null],
    ["all", 10 * MINUTE, next, t(10 * MINUTE)],
    ["latest", null, next, next],
    ["latest", null, null, null],
    ["latest", 10 * MINUTE, next, t(10 * MINUTE)],
    ["latest", 2 * HOUR, next, next],
    ["latest", 2 * HOUR, null, t(2 * HOUR)],
    ["none", null, next, t(DEFAULT_NONE_GRACE_MS)],
    ["none", null, null, t(DEFAULT_NONE_GRACE_MS)],
    ["none", 10 * MINUTE, next, t(10 * MINUTE)],
    ["none", 2 * HOUR, next, next],
  ] as [CatchUp, number | null, Date | null, Date | null][])(
    "%s, window %s, next %s → %s",
    (catchUp, catchUpWindowMs, nextAt, expected) => {
      expect(deadline({ catchUp, catchUpWindowMs }, occ, nextAt)?.toISOString() ?? null).toBe(
        expected?.toISOString() ?? null,
      );
    },
  );
});

/** Runs passes until `more` is false, as the orchestrator does; returns every pass. */
function drain(input: Omit<PlanInput, "liveFuture">) {
  const passes: ReturnType<typeof planExecutions>[] = [];
  let cursor = input.cursor;
  let liveFuture = 0;
  for (let i = 0; i < 100; i++) {
    const p = planExecutions({ ...input, cursor, liveFuture });
    passes.push(p);
    liveFuture += p.executions.filter(
      (e) => e.state === "scheduled" && e.occurrenceAt > input.now,
    ).length;
    cursor = p.cursor;
    if (!p.more) return passes;
  }
  throw new Error("planning did not finish");
}

/** Every occurrence a list of executions stands for, expanding summary rows over the grid. */
function covered(grid: Grid, executions: PlannedExecution[]): string[] {
  const out: string[] = [];
  for (const e of executions) {
    if (e.note) {
      let at: Date | null = e.occurrenceAt;
      let n = 0;
      while (at !== null && at.toISOString() <= e.note.until) {
        out.push(at.toISOString());
        n++;
        at = grid.next(at);
      }
      expect(n).toBe(e.note.count);
    } else out.push(e.occurrenceAt.toISOString());
  }
  return out;
}

describe("SCAN_LIMIT: a long backlog takes several passes", () => {
  it("stops after SCAN_LIMIT past occurrences with more = true, and the next passes finish", () => {
    const backlog = 2 * SCAN_LIMIT + 500; // 10:00 … +2500 min, all past
    const now = t(backlog * MINUTE + 30_000);
    const input = {
      grid: everyMinute,
      cursor: T0,
      now,
      horizon: 3,
      horizonMs: 0,
      catchUp: "all" as const,
      catchUpWindowMs: null,
    };
    const first = planExecutions({ ...input, liveFuture: 0 });
    expect(first.more).toBe(true);
    expect(first.executions).toHaveLength(SCAN_LIMIT);
    expect(first.executions.every((e) => e.state === "scheduled" && e.occurrenceAt <= now)).toBe(
      true,
    );
    expect(first.cursor?.toISOString()).toBe(t(SCAN_LIMIT * MINUTE).toISOString());

    const passes = drain(input);
    expect(passes.map((p) => p.more)).toEqual([true, true, false]);
    expect(passes.map((p) => p.executions.length)).toEqual([SCAN_LIMIT, SCAN_LIMIT, 501 + 3]);
    // Each pass starts where the previous stopped: every occurrence once, in order.
    const all = passes.flatMap((p) => occurrences(p.executions));
    const expected = Array.from({ length: backlog + 1 + 3 }, (_, k) => t(k * MINUTE).toISOString());
    expect(all).toEqual(expected);
    expect(passes[2]?.cursor?.toISOString()).toBe(t((backlog + 4) * MINUTE).toISOString());
  });

  it("exactly SCAN_LIMIT past occurrences and then the future: one pass, more = false", () => {
    const now = t((SCAN_LIMIT - 1) * MINUTE + 30_000);
    const p = plan({ cursor: T0, now, catchUp: "all" });
    expect(p.more).toBe(false);
    expect(p.executions).toHaveLength(SCAN_LIMIT + 3);
  });

  it("with catch-up none the passes summarize what they miss, and still cover each occurrence once", () => {
    const backlog = 2 * SCAN_LIMIT + 250;
    const now = t(backlog * MINUTE + 30_000);
    const input = {
      grid: everyMinute,
      cursor: T0,
      now,
      horizon: 3,
      horizonMs: 0,
      catchUp: "none" as const,
      catchUpWindowMs: null,
    };
    const passes = drain(input);
    expect(passes.map((p) => p.more)).toEqual([true, true, false]);
    const executions = passes.flatMap((p) => p.executions);
    const expected = Array.from({ length: backlog + 1 + 3 }, (_, k) => t(k * MINUTE).toISOString());
    expect(covered(everyMinute, executions)).toEqual(expected);
    // Only the latest (inside the grace) and the future run.
    expect(inState(executions, "scheduled")).toEqual(expected.slice(-4));
    for (const p of passes) {
      expect(p.executions.filter((e) => e.state === "missed").length).toBeLessThanOrEqual(
        MISSED_DETAIL,
      );
    }
  });

  it("property: any backlog and policy, drained pass by pass, plans each occurrence exactly once", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 * SCAN_LIMIT }),
        fc.integer({ min: 0, max: 59_999 }),
        fc.constantFrom<CatchUp>("all", "latest", "none"),
        fc.option(fc.integer({ min: 1, max: 3 * SCAN_LIMIT * MINUTE }), { nil: null }),
        fc.integer({ min: 1, max: 20 }),
        (backlog, extraMs, catchUp, catchUpWindowMs, horizon) => {
          const now = t(backlog * MINUTE + extraMs);
          const input = {
            grid: everyMinute,
            cursor: T0,
            now,
            horizon,
            horizonMs: 0,
            catchUp,
            catchUpWindowMs,
          };
          const passes = drain(input);
          const executions = passes.flatMap((p) => p.executions);
          const expected = Array.from({ length: backlog + 1 + horizon }, (_, k) =>
            t(k * MINUTE).toISOString(),
          );
          expect(covered(everyMinute, executions)).toEqual(expected);
          for (const e of executions) {
            if (e.state === "missed") expect(e.occurrenceAt <= now).toBe(true);
            // What runs is inside its deadline.
            if (e.state === "scheduled" && e.deadlineAt) expect(e.deadlineAt > now).toBe(true);
          }
          expect(passes.slice(0, -1).every((p) => p.more)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("MISSED_DETAIL: a long list of missed occurrences", () => {
  it("keeps the latest ones as rows and folds the older ones into one summary row", () => {
    // 500 minutes of downtime under "none": 10:00 … 18:19 missed, 18:20 (30 s ago) runs.
    const missedCount = 500;
    const now = t(missedCount * MINUTE + 30_000);
    const p = plan({ cursor: T0, now, catchUp: "none" });
    const missed = p.executions.filter((e) => e.state === "missed");
    const summaries = missed.filter((e) => e.note !== null);
    expect(summaries).toHaveLength(1);
    const summary = summaries[0] as PlannedExecution;
    expect(p.executions[0]).toBe(summary);
    const detailed = missed.filter((e) => e.note === null);
    expect(missed.length).toBeLessThanOrEqual(MISSED_DETAIL + 1);
    expect(detailed.length).toBeGreaterThanOrEqual(MISSED_DETAIL - 1);
    // The summary stands for the oldest ones, from the first to just before the detailed rows.
    const note = summary.note as NonNullable<PlannedExecution["note"]>;
    expect(note.count + detailed.length).toBe(missedCount);
    expect(note.from).toBe(T0.toISOString());
    expect(summary.occurrenceAt.toISOString()).toBe(note.from);
    expect(note.until).toBe(t((note.count - 1) * MINUTE).toISOString());
    expect(occurrences(detailed)).toEqual(
      Array.from({ length: detailed.length }, (_, i) => t((note.count + i) * MINUTE).toISOString()),
    );
    expect(note.message).toContain(String(note.count));
    expect(note.message).toContain(note.from);
    expect(note.message).toContain(note.until);
    expect(summary.deadlineAt).toBeNull();
    expect(inState(p.executions, "scheduled")).toEqual(
      iso([t(missedCount * MINUTE), t(501 * MINUTE), t(502 * MINUTE), t(503 * MINUTE)]),
    );
  });

  it("up to MISSED_DETAIL missed occurrences are all rows of their own", () => {
    const now = t(MISSED_DETAIL * MINUTE + 30_000);
    const p = plan({ cursor: T0, now, catchUp: "none" });
    const missed = p.executions.filter((e) => e.state === "missed");
    expect(missed).toHaveLength(MISSED_DETAIL);
    expect(missed.every((e) => e.note === null)).toBe(true);
  });

  it("one more than MISSED_DETAIL brings a summary row", () => {
    const now = t((MISSED_DETAIL + 1) * MINUTE + 30_000);
    const p = plan({ cursor: T0, now, catchUp: "none" });
    const missed = p.executions.filter((e) => e.state === "missed");
    expect(missed.filter((e) => e.note !== null)).toHaveLength(1);
    expect(covered(everyMinute, missed)).toEqual(
      Array.from({ length: MISSED_DETAIL + 1 }, (_, k) => t(k * MINUTE).toISOString()),
    );
  });
});
