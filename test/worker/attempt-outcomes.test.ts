// The ugly ways an attempt can end: odd thrown values, a user's retryDelay
// that throws, error text the database refuses. Each must leave the job
// recorded, never stuck, and never stop the others; the times recorded come
// from the database clock.
import { describe, expect, it } from "vitest";
import { isRotaError } from "../../src/errors.js";
import { defineTask } from "../../src/task.js";
import { Attempt } from "../../src/worker/attempt.js";
import type { ClaimedRow } from "../../src/worker/held-jobs.js";
import type { TestSchema } from "../helpers/database.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker, finalState } = useWorkerHarness((schema) => {
  t = schema;
});

describe("an attempt that ends badly is still recorded", () => {
  it("a handler that throws null or undefined fails the attempt; it never counts as a success", async () => {
    let succeeded = 0;
    const off = t.rota.events.on("job:run:success", () => void succeeded++);
    try {
      await startWorker({
        queues: ["odd.thrown"],
        tasks: {
          throwsNull: async () => {
            throw null;
          },
          throwsUndefined: () => Promise.reject(undefined),
        },
        retention: { succeededMs: 60_000 },
      });
      const a = await t.rota.enqueue("throwsNull", {}, { queue: "odd.thrown", maxAttempts: 1 });
      const b = await t.rota.enqueue(
        "throwsUndefined",
        {},
        { queue: "odd.thrown", maxAttempts: 1 },
      );
      expect((await finalState(a.id))?.state).toBe("failed");
      expect((await t.rota.getJob(a.id))?.last_error?.message).toBe("non-Error thrown: null");
      expect((await finalState(b.id))?.state).toBe("failed");
      expect((await t.rota.getJob(b.id))?.last_error?.message).toBe("non-Error thrown: undefined");
      expect(succeeded).toBe(0);
    } finally {
      off();
    }
  });

  it("a retryDelay that throws falls back to the job's backoff; one of centuries is capped", async () => {
    const errors: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => void errors.push(e.during));
    try {
      const worker = await startWorker({
        queues: ["odd.retry"],
        tasks: {
          throwingDelay: defineTask({
            name: "throwingDelay",
            handler: async () => {
              throw undefined;
            },
            // Reads a field of what was thrown: a TypeError for `undefined`.
            retryDelay: (_attempt, error) => ((error as { status: number }).status === 429 ? 1 : 2),
          }),
          hugeDelay: defineTask({
            name: "hugeDelay",
            handler: async () => {
              throw new Error("later, much later");
            },
            retryDelay: () => 9e15,
          }),
        },
      });
      const a = await t.rota.enqueue(
        "throwingDelay",
        {},
        { queue: "odd.retry", backoff: { kind: "fixed", delayMs: 3_600_000 } },
      );
      const b = await t.rota.enqueue("hugeDelay", {}, { queue: "odd.retry" });
      const now = (await t.rota.clock.now()).getTime();
      const retriedA = await finalState(a.id, ["scheduled"]);
      // The backoff's hour, not a job stuck 'running'.
      expect(retriedA?.run_at.getTime()).toBeGreaterThan(now + 3_500_000);
      const retriedB = await finalState(b.id, ["scheduled"]);
      const years = (retriedB?.run_at.getTime() ?? 0) - now;
      expect(years / (365 * 24 * 3_600_000)).toBeGreaterThan(99);
      expect(years / (365 * 24 * 3_600_000)).toBeLessThan(101);
      expect(errors).toContain("retryDelay");
      await expect.poll(() => worker.held).toBe(0);
    } finally {
      off();
    }
  });

  it("error text jsonb refuses (NUL, an unpaired surrogate) is stored mended, and other failures go on being written", async () => {
    await startWorker({
      queues: ["odd.text"],
      tasks: {
        nul: async () => {
          throw new Error("bad\u0000byte");
        },
        surrogate: async () => {
          throw new Error("half \ud800 a pair");
        },
        plain: async () => {
          throw new Error("ordinary failure");
        },
      },
    });
    const ids = [];
    for (const task of ["nul", "surrogate", "plain"]) {
      ids.push((await t.rota.enqueue(task, {}, { queue: "odd.text", maxAttempts: 1 })).id);
    }
    const [nul, surrogate, plain] = await Promise.all(ids.map((id) => finalState(id)));
    expect(nul?.last_error?.message).toBe("bad\ufffdbyte");
    expect(surrogate?.last_error?.message).toBe("half \ufffd a pair");
    expect(plain?.last_error?.message).toBe("ordinary failure");
  });
});

// An attempt makes its AbortController only when the handler reads its
// signal (attempt.ts): an abort before that must still be seen, with its reason.
describe("a handler's signal, read late", () => {
  it("is already aborted, with the reason, when the attempt was aborted before the handler looked", () => {
    const attempt = new Attempt(
      { id: "7", task: "t" } as ClaimedRow,
      defineTask({ name: "t", handler: async () => {} }),
    );
    attempt.abort("JOB_CANCELLED", "cancelled by an operator");
    attempt.abort("LEASE_LOST", "a second reason is not kept");
    const { signal } = attempt;
    expect(signal.aborted).toBe(true);
    expect(isRotaError(signal.reason, "JOB_CANCELLED")).toBe(true);
    expect(attempt.signal).toBe(signal);
  });

  it("a signal read before the abort fires it once; one never aborted stays quiet", () => {
    const task = defineTask({ name: "t", handler: async () => {} });
    const attempt = new Attempt({ id: "8", task: "t" } as ClaimedRow, task);
    const { signal } = attempt;
    const reasons: unknown[] = [];
    signal.addEventListener("abort", () => reasons.push(signal.reason));
    expect(signal.aborted).toBe(false);
    attempt.abort("SHUTTING_DOWN", "the worker stops");
    attempt.abort("JOB_CANCELLED", "too late");
    expect(reasons).toHaveLength(1);
    expect(isRotaError(reasons[0], "SHUTTING_DOWN")).toBe(true);
    expect(new Attempt({ id: "9", task: "t" } as ClaimedRow, task).signal.aborted).toBe(false);
  });

  it("a handler that reads its signal only after its timeout finds it aborted with JOB_TIMEOUT", async () => {
    let seen: { aborted: boolean; code: unknown } | null = null;
    await startWorker({
      queues: ["late.signal"],
      tasks: {
        slowToLook: defineTask({
          name: "slowToLook",
          timeoutMs: 30,
          handler: async (_payload, ctx) => {
            await new Promise((resolve) => setTimeout(resolve, 120));
            seen = {
              aborted: ctx.signal.aborted,
              code: (ctx.signal.reason as { code?: string }).code,
            };
          },
        }),
      },
    });
    const { id } = await t.rota.enqueue("slowToLook", {}, { queue: "late.signal", maxAttempts: 1 });
    expect((await finalState(id))?.state).toBe("failed");
    await expect.poll(() => seen).toEqual({ aborted: true, code: "JOB_TIMEOUT" });
  });
});

describe("times of a failure", () => {
  it("come from the database clock: the error's time and the retry's", async () => {
    await t.rota.clock.shift(86_400_000);
    try {
      const retried = new Promise<Date>((resolve) => {
        const off = t.rota.events.on("job:run:retry", (e) => {
          if (e.task === "clocked") {
            off();
            resolve(e.retryAt);
          }
        });
      });
      await startWorker({
        queues: ["clocked"],
        tasks: {
          clocked: async () => {
            throw new Error("try again in a minute");
          },
        },
      });
      const { id } = await t.rota.enqueue(
        "clocked",
        {},
        { queue: "clocked", backoff: { kind: "fixed", delayMs: 60_000 } },
      );
      const retryAt = await retried;
      const job = await t.rota.getJob(id);
      // A day ahead of the process clock, as the database clock is.
      expect(retryAt.getTime()).toBe(job?.run_at.getTime());
      expect(retryAt.getTime()).toBeGreaterThan(Date.now() + 86_000_000);
      const at = Date.parse(String((job?.last_error as { at?: string } | null)?.at));
      expect(at).toBeGreaterThan(Date.now() + 86_000_000);
    } finally {
      await t.rota.clock.reset();
    }
  });
});
