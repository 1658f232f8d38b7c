// stop() always ends: its waits on the database are bounded, and a stop
// during start leaves nothing behind.
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { type TestSchema, withClient } from "../helpers/database.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker } = useWorkerHarness((schema) => {
  t = schema;
});

describe("stop when the database does not answer", () => {
  it("ends anyway, after its bounded waits", async () => {
    const errors: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => void errors.push(e.during));
    try {
      await withClient(async (locker) => {
        const worker = await startWorker({ queues: ["locked"], tasks: { noop: async () => {} } });
        await expect.poll(() => worker.idle).toBe(true);
        // Every statement on the jobs table now waits: the next claim hangs.
        await locker.query("begin");
        await locker.query(`lock table "${t.schema}".jobs in access exclusive mode`);
        try {
          worker.wake();
          await expect.poll(() => worker.idle).toBe(false);
          await worker.stop();
          expect(errors).toContain("stop");
        } finally {
          await locker.query("rollback");
        }
      });
    } finally {
      off();
    }
  }, 30_000);
});

describe("stop", () => {
  it("during start leaves no timers behind on closed pools", async () => {
    const errors: unknown[] = [];
    const off = t.rota.events.on("worker:error", (e) => void errors.push(e.error));
    try {
      const worker = t.rota.worker({
        logger: silentLogger,
        queues: ["stop.early"],
        tasks: { noop: async () => {} },
        rescueIntervalMs: 20,
        heartbeatMs: 20,
      });
      const starting = worker.start();
      await worker.stop();
      await starting;
      // Several rescue and heartbeat periods.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(errors).toEqual([]);
    } finally {
      off();
    }
  });
});
