// Scheduling policies against a real PostgreSQL, time driven by the database
// clock: baseline, catch-up, overlap, skip, supersede, trigger, pause, watchdog.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import type { Orchestrator } from "../../src/orchestrator/orchestrator.js";
import { watchdogSlice } from "../../src/schedule/reconciler.js";
import type { JobContext } from "../../src/worker/job-context.js";
import type { Worker } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { deferred, events, nextEvent } from "../helpers/events.js";

const MINUTE = 60_000;

let t: TestSchema;
let orchestrator: Orchestrator;
let worker: Worker | null = null;
beforeEach(async () => {
  t = await migratedSchema();
  orchestrator = t.rota.orchestrator({ holder: "test", leaseTtlMs: 3_600_000 });
});
afterEach(async () => {
  await worker?.stop();
  worker = null;
  await t.drop();
});

async function startWorker(handler: (payload: unknown, ctx: JobContext) => Promise<void>) {
  worker = t.rota.worker({
    logger: silentLogger,
    rescueIntervalMs: 0,
    concurrency: 4,
    tasks: { work: handler },
  });
  await worker.start();
  return worker;
}

async function states(name: string) {
  const history = await t.rota.schedules.history(name, { limit: 1_000 });
  return history
    .map((e) => ({ at: e.occurrenceAt?.getTime() ?? null, state: e.state }))
    .sort((a, b) => (a.at ?? 0) - (b.at ?? 0));
}

/**
 * Moves the clock to a second past the next minute: each shift of a minute
 * after it then brings exactly one occurrence of a minutely schedule due,
 * with a minute's room before the next. (Begun a moment before a minute, the
 * test's own running time carries the clock past the next occurrence too.)
 */
async function toSecondPastMinute() {
  const now = (await t.rota.clock.now()).getTime();
  await t.rota.clock.shift(MINUTE - (now % MINUTE) + 1_000);
}

async function sql<T = Record<string, unknown>>(text: string, values: unknown[] = []) {
  return (await t.db.pool.query(text.replaceAll("{s}", `"${t.schema}"`), values)).rows as T[];
}

describe("baseline", () => {
  it("a schedule with a NULL cursor_at records a baseline and fires nothing already due", async () => {
    // Written by hand, as another system would: no cursor.
    await sql(`insert into {s}.schedules (name, task, cron) values ('raw', 'work', '* * * * *')`);
    const now = await t.rota.clock.now();
    const report = await orchestrator.tick();
    expect(report.materialized?.schedules).toBe(1);
    const rows = await states("raw");
    expect(rows).toHaveLength(3); // the default horizon, all in the future
    expect(rows.every((r) => (r.at as number) > now.getTime())).toBe(true);
    expect(rows.every((r) => r.state === "scheduled")).toBe(true);
    const schedule = await t.rota.schedules.get("raw");
    expect(schedule?.cursorAt?.getTime()).toBe((rows[2]?.at as number) + MINUTE);
  });
});

describe("catch-up after downtime", () => {
  async function downtime(catchUp: "all" | "latest" | "none", catchUpWindowMs?: number) {
    const { schedule } = await t.rota.schedules.upsert({
      name: `catch-${catchUp}`,
      task: "work",
      cron: "* * * * *",
      horizon: 1,
      catchUp,
      ...(catchUpWindowMs ? { catchUpWindowMs } : {}),
    });
    const first = (schedule.cursorAt as Date).getTime() - MINUTE;
    // Ten minutes with no orchestrator and no worker.
    await t.rota.clock.shift(10 * MINUTE);
    await orchestrator.tick();
    const ran: number[] = [];
    const now = (await t.rota.clock.now()).getTime();
    const due = Math.floor(now / MINUTE) - Math.floor(first / MINUTE) + 1;
    await startWorker(async (_p, ctx) => {
      ran.push((ctx.job.occurrenceAt as Date).getTime());
    });
    // Every due execution is settled by a claim: run, or missed at claim.
    const rows = async () =>
      (await states(`catch-${catchUp}`)).filter((r) => (r.at as number) <= now);
    for (let i = 0; i < 100; i++) {
      const settled = (await rows()).filter(
        (r) => r.state !== "scheduled" && r.state !== "running",
      );
      if (settled.length === due) break;
      await nextEvent(t.rota.events, "job:run:success", () => true, 2_000).catch(() => {});
    }
    return { ran: ran.sort(), rows: await rows(), first, due };
  }

  it("all: every missed occurrence runs", async () => {
    const { ran, rows, due } = await downtime("all");
    expect(ran).toHaveLength(due);
    expect(rows.every((r) => r.state === "succeeded")).toBe(true);
  });

  it("latest: only the most recent occurrence runs; the others are recorded as missed", async () => {
    const { ran, rows, due } = await downtime("latest");
    expect(ran).toHaveLength(1);
    expect(ran[0]).toBe(rows[rows.length - 1]?.at);
    expect(rows.filter((r) => r.state === "missed")).toHaveLength(due - 1);
  });

  it("none: nothing missed runs, only an occurrence still within its grace (60 s) does", async () => {
    const { ran, rows, due } = await downtime("none");
    const now = (await t.rota.clock.now()).getTime();
    expect(ran.length).toBeLessThanOrEqual(1);
    expect(ran.every((at) => now - at < MINUTE)).toBe(true);
    expect(rows.filter((r) => r.state === "missed")).toHaveLength(due - ran.length);
    expect(due - ran.length).toBeGreaterThanOrEqual(9);
  });

  it("all with a 3-minute window: only occurrences within the window run", async () => {
    const { ran, rows } = await downtime("all", 3 * MINUTE);
    const now = (await t.rota.clock.now()).getTime();
    expect(ran.length).toBeGreaterThanOrEqual(2);
    expect(ran.length).toBeLessThanOrEqual(3);
    expect(ran.every((at) => now - at < 3 * MINUTE)).toBe(true);
    expect(rows.filter((r) => r.state === "missed").length).toBe(rows.length - ran.length);
  });
});

describe("horizon", () => {
  it("a wider horizon alone changes no execution, and the next pass fills it", async () => {
    const spec = { name: "wider", task: "work", cron: "* * * * *" } as const;
    await t.rota.schedules.upsert({ ...spec, horizon: 1 });
    expect(await states("wider")).toHaveLength(1);
    const again = await t.rota.schedules.upsert({ ...spec, horizon: 3 });
    expect(again.superseded).toBe(0);
    await orchestrator.tick();
    const rows = await states("wider");
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r.state === "scheduled")).toBe(true);
  });
});

describe("materialization events", () => {
  it("announce each execution a tick writes, missed ones too", async () => {
    await t.rota.schedules.upsert({
      name: "announced",
      task: "work",
      cron: "* * * * *",
      horizon: 1,
      catchUp: "latest",
    });
    const materialized: { executionId: string; runAt: Date }[] = [];
    const missed: { count: number }[] = [];
    const offMaterialized = t.rota.events.on("schedule:execution:materialized", (e) =>
      materialized.push(e),
    );
    const offMissed = t.rota.events.on("schedule:execution:missed", (e) => missed.push(e));
    try {
      await t.rota.clock.shift(10 * MINUTE);
      const report = await orchestrator.tick();
      // Every row the tick wrote is announced: the latest to run, the
      // others recorded as missed (one row each, under the summary limit).
      expect(report.materialized?.executions).toBe(materialized.length + missed.length);
      expect(materialized.length).toBeGreaterThanOrEqual(1);
      expect(missed.length).toBeGreaterThanOrEqual(8);
      expect(missed.every((m) => m.count === 1)).toBe(true);
      expect(materialized.every((m) => m.executionId !== "" && m.runAt instanceof Date)).toBe(true);
    } finally {
      offMaterialized();
      offMissed();
    }
  });
});

describe("overlap", () => {
  async function overlapping(overlap: "skip" | "queue") {
    const release = deferred();
    const started: number[] = [];
    /** The job ids of this schedule's runs, in the order they started. */
    const ids: string[] = [];
    // The second occurrence is claimed late, once the first is done; begun
    // a moment before a minute, that could be past its deadline (the next
    // occurrence) and leave it missed.
    await toSecondPastMinute();
    const { schedule } = await t.rota.schedules.upsert({
      name: `overlap-${overlap}`,
      task: "work",
      cron: "* * * * *",
      overlap,
      horizon: 3,
    });
    const firstStarted = deferred();
    // Other schedules of this file run task "work" every minute too: only
    // this one's runs are counted and held.
    await startWorker(async (_p, ctx) => {
      if (ctx.job.scheduleId !== schedule.id) return;
      started.push((ctx.job.occurrenceAt as Date).getTime());
      ids.push(ctx.job.id);
      if (started.length === 1) {
        firstStarted.resolve();
        await release.promise;
      }
    });
    // The first occurrence comes due and runs, held open.
    await t.rota.clock.shift(MINUTE);
    await firstStarted.promise;
    const succeeded = (n: number) =>
      nextEvent(t.rota.events, "job:run:success", (e) => e.id === ids[n], 5_000);
    return { release, started, ids, succeeded };
  }

  it("skip: an execution due while the previous one runs is recorded as skipped", async () => {
    const { release, started, succeeded } = await overlapping("skip");
    const skipped = nextEvent(t.rota.events, "schedule:execution:skipped");
    await t.rota.clock.shift(MINUTE);
    const event = await skipped;
    expect(event.reason).toBe("overlap");
    expect(started).toHaveLength(1);
    const done = succeeded(0);
    release.resolve();
    await done;
    const rows = await states("overlap-skip");
    expect(rows.map((r) => r.state).slice(0, 2)).toEqual(["succeeded", "skipped"]);
  });

  it("queue: an execution due while the previous one runs waits, then runs", async () => {
    const { release, started, ids, succeeded } = await overlapping("queue");
    const [, second] = await states("overlap-queue");
    await t.rota.clock.shift(MINUTE);
    // Due while the first runs: held by its key's limit of one, as it is (its
    // run time stays; it is not put back and re-checked).
    await new Promise((r) => setTimeout(r, 300));
    const held = await sql<{ run_at: Date; state: string }>(
      `select run_at, state from {s}.jobs where occurrence_at = $1`,
      [new Date(second?.at as number)],
    );
    expect(held[0]).toEqual({ run_at: new Date(second?.at as number), state: "scheduled" });
    expect(started).toHaveLength(1);
    const firstDone = succeeded(0);
    release.resolve();
    await firstDone;
    // ... and runs once the first is done (its outcome's wake-up claims it).
    await expect
      .poll(async () => (await states("overlap-queue"))[1]?.state, { timeout: 5_000 })
      .toBe("succeeded");
    expect(ids).toHaveLength(2);
    expect(started).toHaveLength(2);
    expect((started[1] as number) - (started[0] as number)).toBe(MINUTE);
  });
});

describe("retries and missed executions", () => {
  it("an execution waiting for its retry holds no horizon slot: the schedule keeps being planned", async () => {
    // A second past a minute: each shift below then brings exactly one
    // occurrence due (started a moment before a minute, the test's own
    // running time carried the clock past the next one too).
    await toSecondPastMinute();
    await t.rota.schedules.upsert({
      name: "flaky",
      task: "work",
      cron: "* * * * *",
      horizon: 1,
      catchUp: "all",
    });
    // The first run fails and waits 30 minutes for its retry.
    const failed = nextEvent(t.rota.events, "job:run:retry");
    worker = t.rota.worker({
      logger: silentLogger,
      rescueIntervalMs: 0,
      tasks: {
        work: {
          name: "work",
          retryDelay: () => 30 * MINUTE,
          handler: async (_p, ctx) => {
            if (ctx.attempt === 1 && ctx.job.occurrenceAt !== null && ran.length === 0) {
              ran.push(-1);
              throw new Error("first run fails");
            }
            ran.push((ctx.job.occurrenceAt as Date).getTime());
          },
        },
      },
    });
    const ran: number[] = [];
    await worker.start();
    await t.rota.clock.shift(MINUTE);
    await failed;
    for (let minute = 0; minute < 3; minute++) {
      await orchestrator.tick();
      const next = nextEvent(t.rota.events, "job:run:success");
      await t.rota.clock.shift(MINUTE);
      await orchestrator.tick();
      await next;
    }
    // Three later occurrences ran while the first waited for its retry.
    expect(ran.filter((at) => at > 0)).toHaveLength(3);
    expect(new Set(ran).size).toBe(ran.length);
  });

  it("overlap skip: a missed execution claimed with a valid one does not make the valid one skip", async () => {
    await t.rota.schedules.upsert({
      name: "skip-after-downtime",
      task: "work",
      cron: "* * * * *",
      overlap: "skip",
      catchUp: "latest",
      horizon: 3,
    });
    // Workers down for two occurrences: the first is past its deadline, the second is due.
    await t.rota.clock.shift(2 * MINUTE);
    const ran = nextEvent(t.rota.events, "job:run:success");
    await startWorker(async () => {});
    await ran;
    const rows = await states("skip-after-downtime");
    expect(rows.slice(0, 2).map((r) => r.state)).toEqual(["missed", "succeeded"]);
  });
});

describe("skip, trigger, pause", () => {
  it("skip: the next occurrence never runs, history shows it skipped, the horizon is refilled", async () => {
    const { schedule } = await t.rota.schedules.upsert({
      name: "s",
      task: "work",
      cron: "* * * * *",
      catchUp: "all",
    });
    const before = await t.rota.schedules.upcoming("s", { limit: 4 });
    const skipped = await t.rota.schedules.skip("s");
    expect(skipped.occurrenceAt?.getTime()).toBe(before[0]?.runAt.getTime());
    const after = await t.rota.schedules.upcoming("s", { limit: 3 });
    expect(after.map((u) => u.runAt.getTime())).toEqual(
      before.slice(1).map((u) => u.runAt.getTime()),
    );
    expect(after.every((u) => u.executionId !== null)).toBe(true); // refilled: 3 materialized
    // One further ahead, by its execution id.
    const byId = await t.rota.schedules.skip("s", { executionId: after[1]?.executionId as string });
    expect(byId.occurrenceAt?.getTime()).toBe(before[2]?.runAt.getTime());
    const ran: number[] = [];
    const fired = events(t.rota.events, "schedule:execution:fired", 2);
    await startWorker(async (_p, ctx) => {
      ran.push((ctx.job.occurrenceAt as Date).getTime());
    });
    const twoRuns = events(t.rota.events, "job:run:success", 2);
    await t.rota.clock.shift(4 * MINUTE);
    await twoRuns;
    expect(ran).not.toContain(skipped.occurrenceAt?.getTime());
    expect(ran).not.toContain(byId.occurrenceAt?.getTime());
    expect(ran).toEqual([before[1]?.runAt.getTime(), before[3]?.runAt.getTime()]);
    // Each start was reported with its planned time and lateness (by the database clock).
    const reports = await fired;
    expect(reports.map((e) => e.occurrenceAt?.getTime())).toEqual(ran);
    expect(reports.every((e) => e.scheduleId === schedule.id && e.lateMs >= 0)).toBe(true);
    const rows = await states("s");
    expect(rows.filter((r) => r.state === "skipped").map((r) => r.at)).toEqual([
      skipped.occurrenceAt?.getTime(),
      byId.occurrenceAt?.getTime(),
    ]);
    await expect(t.rota.schedules.skip("s", { executionId: "999999" })).rejects.toMatchObject({
      code: "EXECUTION_NOT_FOUND",
    });
    expect(schedule.id).toBeTruthy();
  });

  it("trigger: one extra execution now, the grid left alone", async () => {
    await t.rota.schedules.upsert({ name: "tr", task: "work", cron: "0 0 1 1 *" });
    const before = await t.rota.schedules.upcoming("tr", { limit: 3 });
    const ran = nextEvent(t.rota.events, "job:run:success");
    await startWorker(async () => {});
    const { executionId } = await t.rota.schedules.trigger("tr");
    expect((await ran).id).toBe(executionId);
    const after = await t.rota.schedules.upcoming("tr", { limit: 3 });
    expect(after).toEqual(before);
  });

  it("pause also supersedes an execution that is due but not claimed yet: nothing runs after it", async () => {
    await t.rota.schedules.upsert({ name: "due-then-paused", task: "work", cron: "* * * * *" });
    // Just past the first planned run: it is due, the next two are not.
    const [first] = await t.rota.schedules.upcoming("due-then-paused", { limit: 1 });
    const now0 = (await t.rota.clock.now()).getTime();
    await t.rota.clock.shift((first?.runAt.getTime() as number) - now0 + 1_000);
    await t.rota.schedules.pause("due-then-paused");
    // The due one is superseded too (claims never take superseded rows).
    const now = (await t.rota.clock.now()).getTime();
    const due = (await states("due-then-paused")).filter((r) => (r.at as number) <= now);
    expect(due).toHaveLength(1);
    expect((await states("due-then-paused")).every((r) => r.state === "superseded")).toBe(true);
  });

  it("pause supersedes planned executions; resume starts at the next occurrence, no burst", async () => {
    await t.rota.schedules.upsert({ name: "p", task: "work", cron: "* * * * *" });
    await t.rota.schedules.pause("p");
    expect((await states("p")).every((r) => r.state === "superseded")).toBe(true);
    expect(await t.rota.schedules.upcoming("p")).toEqual([]);
    await t.rota.clock.shift(30 * MINUTE);
    await orchestrator.tick();
    const resumed = await t.rota.schedules.resume("p");
    const now = await t.rota.clock.now();
    const live = (await states("p")).filter((r) => r.state === "scheduled");
    expect(live).toHaveLength(3);
    expect(live.every((r) => (r.at as number) > now.getTime())).toBe(true);
    expect(resumed.paused).toBe(false);
  });
});

describe("re-baselining with executions already planned", () => {
  it("resume or enable of a running schedule keeps its plan: nothing planned twice, the cursor after it", async () => {
    await t.rota.schedules.upsert({ name: "steady", task: "work", cron: "* * * * *" });
    const before = await t.rota.schedules.upcoming("steady", { limit: 5 });
    await t.rota.schedules.resume("steady");
    await t.rota.schedules.enable("steady");
    await orchestrator.tick();
    const after = await t.rota.schedules.upcoming("steady", { limit: 5 });
    expect(after).toEqual(before);
    const schedule = await t.rota.schedules.get("steady");
    expect(schedule?.cursorAt?.getTime()).toBe(before[3]?.runAt.getTime());
    expect((await states("steady")).filter((r) => r.state === "scheduled")).toHaveLength(3);
  });
});

describe("drift and repair", () => {
  it("a change supersedes the stale planned executions and plans new ones in the same call", async () => {
    await t.rota.schedules.upsert({
      name: "d",
      task: "work",
      cron: "* * * * *",
      payload: { v: 1 },
    });
    const changed = await t.rota.schedules.upsert({
      name: "d",
      task: "work",
      cron: "* * * * *",
      payload: { v: 2 },
    });
    expect(changed.outcome).toBe("changed");
    expect(changed.superseded).toBe(3);
    expect(changed.materialized).toBe(3);
    const payloads: unknown[] = [];
    await startWorker(async (payload) => {
      payloads.push(payload);
    });
    const ran = nextEvent(t.rota.events, "job:run:success");
    await t.rota.clock.shift(MINUTE);
    await ran;
    expect(payloads).toEqual([{ v: 2 }]);
    const same = await t.rota.schedules.upsert({
      name: "d",
      task: "work",
      cron: "* * * * *",
      payload: { v: 2 },
    });
    expect(same.outcome).toBe("unchanged");
  });

  it("a change written by hand in SQL is reconciled: stale executions superseded, new ones planned", async () => {
    await t.rota.schedules.upsert({ name: "h", task: "work", cron: "* * * * *" });
    await sql(`update {s}.schedules set cron = '*/5 * * * *' where name = 'h'`);
    const report = await orchestrator.tick();
    expect(report.reconciled?.reconciled).toBe(1);
    const rows = await states("h");
    expect(rows.filter((r) => r.state === "superseded")).toHaveLength(3);
    const live = rows.filter((r) => r.state === "scheduled");
    expect(live).toHaveLength(3);
    expect(live.every((r) => (r.at as number) % (5 * MINUTE) === 0)).toBe(true);
  });

  it("the watchdog scans a fixed number of schedules per slice, skipped ones included, and wraps", async () => {
    for (const name of ["s1", "s2", "s3", "s4", "s5"]) {
      await t.rota.schedules.upsert({ name, task: "work", cron: "* * * * *" });
    }
    await t.rota.schedules.pause("s2");
    await t.rota.schedules.pause("s3");
    // s4's cursor falls behind its planned executions.
    await sql(
      `update {s}.schedules set cursor_at = cursor_at - interval '2 minutes' where name = 's4'`,
    );
    const ids = (await sql<{ id: string }>(`select id::text from {s}.schedules order by id`)).map(
      (r) => r.id,
    );
    // Two schedules per slice: the paused ones count toward it, so s4 comes in the second.
    const first = await watchdogSlice(t.db, { after: "0", limit: 2 });
    expect(first).toEqual({ repaired: 0, resumeAfter: ids[1] });
    const second = await watchdogSlice(t.db, { after: first.resumeAfter, limit: 2 });
    expect(second).toEqual({ repaired: 1, resumeAfter: ids[3] });
    // The last slice is short: the scan wraps.
    const third = await watchdogSlice(t.db, { after: second.resumeAfter, limit: 2 });
    expect(third).toEqual({ repaired: 0, resumeAfter: "0" });
  });

  it("the watchdog re-creates deleted future executions and repairs a wrong cursor", async () => {
    await t.rota.schedules.upsert({ name: "w", task: "work", cron: "* * * * *" });
    const planned = await t.rota.schedules.upcoming("w", { limit: 3 });
    await sql(`delete from {s}.jobs where schedule_id is not null`);
    orchestrator.runAllStepsNextTick();
    let report = await orchestrator.tick();
    expect(report.watchdog?.repaired).toBe(1);
    // The repair puts the cursor back; the next pass re-creates the executions.
    report = await orchestrator.tick();
    const again = await t.rota.schedules.upcoming("w", { limit: 3 });
    expect(again.map((u) => u.runAt.getTime())).toEqual(planned.map((u) => u.runAt.getTime()));
    expect(again.every((u) => u.executionId !== null)).toBe(true);

    // A cursor moved behind its planned executions is put back after them.
    await sql(
      `update {s}.schedules set cursor_at = cursor_at - interval '2 minutes' where name = 'w'`,
    );
    orchestrator.runAllStepsNextTick();
    report = await orchestrator.tick();
    expect(report.watchdog?.repaired).toBe(1);
    const schedule = await t.rota.schedules.get("w");
    expect(schedule?.cursorAt?.getTime()).toBe((planned[2]?.runAt.getTime() as number) + MINUTE);
  });
});
