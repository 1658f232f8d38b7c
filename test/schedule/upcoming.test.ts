import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import type { Orchestrator } from "../../src/orchestrator/orchestrator.js";
import type { UpcomingRun } from "../../src/schedule/schedules.js";
import type { Worker } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

/**
 * upcoming() agrees with what later fires, across DST changes: list a
 * schedule's next runs, then drive the database clock through them with
 * orchestrator ticks and a worker, and compare what ran with what was listed.
 */

let t: TestSchema;
let orchestrator: Orchestrator;
const workers: Worker[] = [];

beforeAll(async () => {
  t = await migratedSchema();
  orchestrator = t.rota.orchestrator({ holder: "test" });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await t.rota.clock.reset();
});
afterAll(() => t.drop());

/** Moves the database clock to `at` (it keeps running from there). */
async function setClock(at: Date): Promise<Date> {
  const now = await t.rota.clock.now();
  return t.rota.clock.shift(at.getTime() - now.getTime());
}

/** A worker on its own queue that records each execution's occurrence. */
async function recordingWorker(task: string, queue: string): Promise<Date[]> {
  const seen: Date[] = [];
  const worker = t.rota.worker({
    tasks: {
      [task]: async (_payload, ctx) => {
        seen.push(ctx.job.occurrenceAt as Date);
      },
    },
    queues: [queue],
    logger: silentLogger,
  });
  workers.push(worker);
  await worker.start();
  return seen;
}

/**
 * Walks the clock to each listed run (one second past it), ticks the
 * orchestrator, and waits for the worker to finish that run.
 */
async function driveThrough(task: string, runs: UpcomingRun[], seen: Date[]): Promise<void> {
  const before = seen.length;
  for (const [i, run] of runs.entries()) {
    const done = nextEvent(t.rota.events, "job:run:success", (e) => e.task === task);
    await setClock(new Date(run.runAt.getTime() + 1_000));
    await orchestrator.tick();
    await done;
    expect(seen).toHaveLength(before + i + 1);
  }
}

const iso = (dates: (Date | null)[]) => dates.map((d) => d?.toISOString() ?? null);

describe("upcoming() agrees with what later fires, across DST", () => {
  it('"30 2 * * *" in America/New_York through the spring change', async () => {
    await setClock(new Date("2026-03-05T15:00:00Z"));
    const name = "ny-0230";
    const task = "ny-0230-task";
    await t.rota.schedules.upsert({
      name,
      task,
      cron: "30 2 * * *",
      timezone: "America/New_York",
      queue: name,
    });
    const upcoming = await t.rota.schedules.upcoming(name, { limit: 20 });
    expect(upcoming).toHaveLength(20);
    // The horizon (3) is materialized; the rest are computed.
    expect(upcoming.slice(0, 3).every((r) => r.executionId !== null)).toBe(true);
    expect(upcoming.slice(3).every((r) => r.state === "computed")).toBe(true);
    // 6 and 7 March at 02:30 EST, 8 March at 03:00 EDT (02:30 does not exist), then 02:30 EDT.
    expect(iso(upcoming.slice(0, 5).map((r) => r.runAt))).toEqual([
      "2026-03-06T07:30:00.000Z",
      "2026-03-07T07:30:00.000Z",
      "2026-03-08T07:00:00.000Z",
      "2026-03-09T06:30:00.000Z",
      "2026-03-10T06:30:00.000Z",
    ]);
    for (const r of upcoming) expect(r.occurrenceAt?.toISOString()).toBe(r.runAt.toISOString());

    const seen = await recordingWorker(task, name);
    // Halfway, what is still upcoming is the rest of the first list.
    await driveThrough(task, upcoming.slice(0, 10), seen);
    const rest = await t.rota.schedules.upcoming(name, { limit: 10 });
    expect(iso(rest.map((r) => r.runAt))).toEqual(iso(upcoming.slice(10).map((r) => r.runAt)));
    await driveThrough(task, upcoming.slice(10), seen);
    expect(iso(seen)).toEqual(iso(upcoming.map((r) => r.occurrenceAt)));
  });

  it('"0 * * * *" in Europe/Berlin through the spring and fall changes', async () => {
    const task = "berlin-hourly-task";
    const name = "berlin-hourly";
    const seen = await recordingWorker(task, name);
    for (const [from, change] of [
      ["2026-03-28T16:10:00Z", "2026-03-29T01:00:00.000Z"],
      ["2026-10-24T16:10:00Z", "2026-10-25T01:00:00.000Z"],
    ] as const) {
      seen.length = 0;
      await t.rota.schedules.remove(name).catch(() => {});
      await setClock(new Date(from));
      await t.rota.schedules.upsert({
        name,
        task,
        cron: "0 * * * *",
        timezone: "Europe/Berlin",
        queue: name,
        horizon: 5,
      });
      const upcoming = await t.rota.schedules.upcoming(name, { limit: 20 });
      expect(upcoming).toHaveLength(20);
      expect(upcoming.slice(0, 5).every((r) => r.executionId !== null)).toBe(true);
      const times = upcoming.map((r) => r.runAt.getTime());
      // Real-time cadence through the change: 60 minutes apart, the change instant included.
      expect(new Set(times.slice(1).map((x, i) => x - (times[i] as number)))).toEqual(
        new Set([3_600_000]),
      );
      expect(iso(upcoming.map((r) => r.runAt))).toContain(change);
      await driveThrough(task, upcoming, seen);
      expect(iso(seen)).toEqual(iso(upcoming.map((r) => r.occurrenceAt)));
    }
  });

  it('"30 1 * * *" in America/New_York runs once on the fall-back night', async () => {
    await setClock(new Date("2026-10-30T12:00:00Z"));
    const name = "ny-0130";
    const task = "ny-0130-task";
    await t.rota.schedules.upsert({
      name,
      task,
      cron: "30 1 * * *",
      timezone: "America/New_York",
      queue: name,
    });
    const upcoming = await t.rota.schedules.upcoming(name, { limit: 5 });
    expect(iso(upcoming.map((r) => r.runAt))).toEqual([
      "2026-10-31T05:30:00.000Z",
      "2026-11-01T05:30:00.000Z", // 01:30 EDT, the first of the two
      "2026-11-02T06:30:00.000Z",
      "2026-11-03T06:30:00.000Z",
      "2026-11-04T06:30:00.000Z",
    ]);
    const seen = await recordingWorker(task, name);
    await driveThrough(task, upcoming, seen);
    expect(iso(seen)).toEqual(iso(upcoming.map((r) => r.occurrenceAt)));
    // What comes next continues the same grid.
    const next = await t.rota.schedules.upcoming(name, { limit: 1 });
    expect(iso(next.map((r) => r.runAt))).toEqual(["2026-11-05T06:30:00.000Z"]);
  });
});
