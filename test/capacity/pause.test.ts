// The kill switch: a paused queue takes enqueues but nothing of it is
// claimed, held jobs not started go back, running ones finish, and on resume
// every job runs once; planned executions wait and follow their catch-up
// policy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import type { Worker } from "../../src/worker/worker.js";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function recordingWorker(queue: string, options: { listen?: boolean } = {}, handlerMs = 20) {
  const starts: { n: number; at: number }[] = [];
  const runs = new Map<number, number>();
  const worker: Worker = t.rota.worker({
    queues: [queue],
    concurrency: 2,
    pollIntervalMs: 100,
    fallbackPollMs: 100,
    logger: silentLogger,
    rescueIntervalMs: 0,
    ...options,
    tasks: {
      work: async (payload: { n: number }) => {
        starts.push({ n: payload.n, at: Date.now() });
        runs.set(payload.n, (runs.get(payload.n) ?? 0) + 1);
        await sleep(handlerMs);
      },
    },
  });
  return { worker, starts, runs };
}

describe("pausing a queue", () => {
  it("stops its claims with jobs in flight; resume runs every job once", async () => {
    // Slow handlers, so the worker holds claimed jobs in its buffer at the pause.
    const { worker, starts, runs } = recordingWorker("pausable", {}, 400);
    await worker.start();
    try {
      await t.rota.enqueueMany(
        Array.from({ length: 12 }, (_, n) => ({
          task: "work",
          payload: { n },
          options: { queue: "pausable" },
        })),
      );
      await expect.poll(() => starts.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      await t.rota.queues.pause("pausable");
      const pausedAt = Date.now();
      // Accepted while paused.
      await t.rota.enqueueMany(
        Array.from({ length: 8 }, (_, n) => ({
          task: "work",
          payload: { n: 12 + n },
          options: { queue: "pausable" },
        })),
      );
      await sleep(1_500);
      const resumedAt = Date.now();
      // Nothing started once the wake-up could arrive (300 ms, for a busy
      // machine; a handler takes 400, so a buffered job would start within
      // the pause); what ran was claimed before.
      const startedWhilePaused = starts.filter((s) => s.at > pausedAt + 300 && s.at < resumedAt);
      expect(startedWhilePaused).toEqual([]);
      const listed = (await t.rota.queues.list()).find((q) => q.name === "pausable");
      expect(listed?.paused).toBe(true);
      expect(listed?.counts.available ?? 0).toBeGreaterThan(8);
      expect(listed?.counts.running ?? 0).toBe(0);

      await t.rota.queues.resume("pausable");
      // Every one of the 20 runs, once: all ran, none twice, none left.
      await expect.poll(() => starts.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(20);
      await expect.poll(async () => (await t.rota.listJobs({ queue: "pausable" })).length).toBe(0);
      expect(starts).toHaveLength(20);
      expect(runs.size).toBe(20);
      expect([...runs.values()].every((count) => count === 1)).toBe(true);
      expect((await t.rota.queues.list()).find((q) => q.name === "pausable")?.paused).toBe(false);
    } finally {
      await worker.stop();
    }
  });

  it("a worker that hears no wake-up stops at its next claim", async () => {
    await t.rota.queues.pause("deaf");
    const { worker, starts, runs } = recordingWorker("deaf", { listen: false });
    await worker.start();
    try {
      await t.rota.enqueueMany(
        Array.from({ length: 5 }, (_, n) => ({
          task: "work",
          payload: { n },
          options: { queue: "deaf" },
        })),
      );
      await sleep(600);
      expect(starts).toEqual([]);
      await t.rota.queues.resume("deaf");
      await expect.poll(() => runs.size, { timeout: 10_000 }).toBe(5);
    } finally {
      await worker.stop();
    }
  });

  it("planned executions that come due wait, and follow their catch-up policy on resume", async () => {
    await t.rota.queues.pause("planned");
    await t.rota.schedules.upsert({
      name: "every-minute",
      task: "tick",
      queue: "planned",
      cron: "* * * * *",
      catchUp: "latest",
    });
    const ran: Date[] = [];
    const worker = t.rota.worker({
      queues: ["planned"],
      logger: silentLogger,
      rescueIntervalMs: 0,
      tasks: { tick: async (_p, ctx) => void ran.push(ctx.job.occurrenceAt as Date) },
    });
    await worker.start();
    try {
      const planned = await t.rota.schedules.upcoming("every-minute", { limit: 3 });
      // Past the third planned occurrence: all three are due, none runs.
      const now = await t.rota.clock.now();
      await t.rota.clock.shift((planned[2]?.runAt.getTime() ?? 0) - now.getTime() + 1_000);
      await sleep(500);
      expect(ran).toEqual([]);
      await t.rota.queues.resume("planned");
      await expect.poll(() => ran.length, { timeout: 10_000 }).toBe(1);
      // Catch-up latest: only the last one runs, the two before it are missed.
      expect(ran[0]).toEqual(planned[2]?.runAt);
      const history = await t.rota.schedules.history("every-minute", { states: ["missed"] });
      expect(history.map((e) => e.occurrenceAt)).toEqual(
        expect.arrayContaining([planned[0]?.runAt, planned[1]?.runAt]),
      );
    } finally {
      await worker.stop();
      await t.rota.clock.reset();
    }
  });

  it("rota queues pause, list and resume, with --json; a bad name writes nothing", async () => {
    const cli = (...args: string[]) =>
      runCli([...args, "--schema", t.schema, "--database-url", t.url]);
    const paused = await cli("queues", "pause", "cli-q", "--json");
    expect(paused.code, paused.stderr).toBe(0);
    expect(JSON.parse(paused.stdout)).toEqual({ name: "cli-q", paused: true });
    const list = JSON.parse((await cli("queues", "list", "--json")).stdout) as {
      name: string;
      paused: boolean;
      oldest_available_ms: number | null;
    }[];
    expect(list.find((q) => q.name === "cli-q")).toMatchObject({ paused: true });
    expect((await cli("queues", "list")).stdout.split("\n")[0]).toMatch(
      /^name\s+paused\s+limit\s+available\s+scheduled\s+running\s+failed\s+waiting_for_limit\s+oldest_available_s$/,
    );
    const resumed = await cli("queues", "resume", "cli-q");
    expect(resumed.stdout).toContain('queue "cli-q" resumed');
    const bad = await cli("queues", "pause", "no spaces");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("INVALID_QUEUE_NAME");
    const after = JSON.parse((await cli("queues", "list", "--json")).stdout) as { name: string }[];
    expect(after.some((q) => q.name === "no spaces")).toBe(false);
  });
});
