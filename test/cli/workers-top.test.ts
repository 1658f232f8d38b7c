// `rota workers list` and `rota top`, against a real PostgreSQL: a worker's
// own report (its row, its outcomes per minute) as an operator reads it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import type { Worker } from "../../src/worker/worker.js";
import { cliOn } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
let worker: Worker;
const { cli, json } = cliOn(() => t);
beforeAll(async () => {
  t = await migratedSchema();
  worker = t.rota.worker({
    workerId: "cli-test-worker",
    queues: ["reports"],
    concurrency: 3,
    tasks: { "report.build": async () => {} },
    statsIntervalMs: 100,
    logger: silentLogger,
    rescueIntervalMs: 0,
  });
  await worker.start();
  await t.rota.enqueueMany(
    Array.from({ length: 4 }, () => ({ task: "report.build", options: { queue: "reports" } })),
  );
  // Its outcomes reported: four succeeded in this minute.
  for (let i = 0; ; i++) {
    const minutes = await t.rota.queues.throughput({ minutes: 5, queue: "reports" });
    if (minutes.reduce((sum, m) => sum + m.succeeded, 0) === 4) break;
    if (i > 200) throw new Error("the worker never reported its outcomes");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});
afterAll(async () => {
  await worker.stop();
  await t.drop();
});

describe("rota workers list and rota top", () => {
  it("workers list shows the worker as it reported itself, with --json and as text", async () => {
    const rows = await json("workers", "list");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id: "cli-test-worker",
      queues: ["reports"],
      tasks: ["report.build"],
      concurrency: 3,
      stopped_at: null,
    });
    const text = await cli("workers", "list");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^id\s+queues\s+concurrency\s+running/);
    expect(text.stdout).toContain("cli-test-worker");
  });

  it("top draws once when not on a terminal: the queue with its last five minutes, the worker", async () => {
    const text = await cli("top");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^rota top · .* · leader none · 1 worker\(s\)/);
    expect(text.stdout).toMatch(
      /queue\s+paused\s+available\s+scheduled\s+running\s+failed\s+done_5m\s+failed_5m/,
    );
    expect(text.stdout).toMatch(/reports\s+0\s+0\s+0\s+0\s+4\s+0/);
    expect(text.stdout).toMatch(/cli-test-worker\s+reports\s+0\/3/);
  });

  it("top --json prints one view: the leader, each queue with its last five minutes, the workers", async () => {
    const view = (await json("top")) as {
      at: string;
      leader: unknown;
      queues: Record<string, unknown>[];
      workers: Record<string, unknown>[];
    };
    expect(Number.isNaN(Date.parse(view.at))).toBe(false);
    expect(view.leader).toBeNull();
    expect(view.queues).toEqual([
      {
        queue: "reports",
        paused: false,
        available: 0,
        scheduled: 0,
        running: 0,
        failed: 0,
        last_five_minutes: { succeeded: 4, failed: 0 },
        oldest_wait_ms: null,
      },
    ]);
    expect(view.workers).toEqual([
      expect.objectContaining({
        worker: "cli-test-worker",
        queues: ["reports"],
        running: 0,
        concurrency: 3,
        stopped: false,
      }),
    ]);
  });

  it("refuses a bad interval with a coded error", async () => {
    const result = await cli("workers", "list", "--seen-within-ms", "soon");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("INVALID_OPTION");
  });
});
