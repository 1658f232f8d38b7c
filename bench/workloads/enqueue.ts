import type { Measurement } from "../results.js";
import type { BenchSystem } from "../systems/types.js";
import { nowMs } from "../time.js";
import { payloads, type WorkloadContext } from "./context.js";

const WARM_UP_PER_CALLER = 20;

/**
 * enqueue_single_N: N callers, each enqueueing one job at a time and waiting
 * for it to be committed before the next, for a fixed time. After a short
 * warm-up (connections, prepared statements, JIT).
 */
export async function enqueueSingle(
  system: BenchSystem,
  callers: number,
  context: WorkloadContext,
): Promise<Measurement> {
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let n = 0; n < WARM_UP_PER_CALLER; n++) await system.enqueueOne({ i: next++ });
    }),
  );
  let count = 0;
  const start = nowMs();
  const deadline = start + context.options.singleSeconds * 1000;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (nowMs() < deadline) {
        await system.enqueueOne({ i: next++ });
        count++;
      }
    }),
  );
  const seconds = (nowMs() - start) / 1000;
  return { jobs_per_s: count / seconds, jobs: count, seconds };
}

/** enqueue_bulk: one call of the system's bulk API with all the jobs. */
export async function enqueueBulk(
  system: BenchSystem,
  context: WorkloadContext,
): Promise<Measurement> {
  await system.enqueueBulk(payloads(100, -100)); // warm-up
  const jobs = payloads(context.options.jobs);
  const start = nowMs();
  await system.enqueueBulk(jobs);
  const seconds = (nowMs() - start) / 1000;
  return { jobs_per_s: jobs.length / seconds, jobs: jobs.length, seconds };
}
