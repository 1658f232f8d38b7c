import type { Measurement } from "../results.js";
import { median } from "../stats.js";
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

/** Measured calls of enqueue_bulk; the median is reported. */
const BULK_RUNS = 3;

/**
 * enqueue_bulk: one call of the system's bulk API with all the jobs, timed
 * BULK_RUNS times; the median call is reported. The warm-up is a list a tenth
 * as long, so it takes the same path as the measured calls (a bulk API may
 * treat a short list differently) and the process has compiled that path.
 */
export async function enqueueBulk(
  system: BenchSystem,
  context: WorkloadContext,
): Promise<Measurement> {
  const count = context.options.jobs;
  const warmUp = Math.max(100, Math.floor(count / 10));
  await system.enqueueBulk(payloads(warmUp, -warmUp));
  const times: number[] = [];
  for (let run = 0; run < BULK_RUNS; run++) {
    const jobs = payloads(count, run * count);
    const start = nowMs();
    await system.enqueueBulk(jobs);
    times.push((nowMs() - start) / 1000);
  }
  const seconds = median(times);
  return { jobs_per_s: count / seconds, jobs: count, seconds };
}
