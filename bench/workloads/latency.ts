import type { Measurement } from "../results.js";
import { percentile } from "../stats.js";
import type { BenchPayload, BenchSystem } from "../systems/types.js";
import { nowMs, sleep } from "../time.js";
import { stopWorker, type WorkloadContext } from "./context.js";

const WARM_UP_JOBS = 10;

/**
 * latency: a worker runs (the workload's concurrency) while one caller
 * enqueues at a steady rate (50 jobs/s by default). Each payload carries the
 * time taken right before its enqueue call; the handler's start time minus
 * that is one sample. Reports p50/p95/p99 in milliseconds.
 */
export async function latency(system: BenchSystem, context: WorkloadContext): Promise<Measurement> {
  const { rate, latencySeconds, concurrency } = context.options;
  const total = Math.max(1, Math.round(rate * latencySeconds));
  const samples: number[] = [];
  let warmedUp = 0;
  const worker = await system.startWorker({
    concurrency,
    onJob: (payload: BenchPayload) => {
      const at = nowMs();
      if (payload.i < 0) warmedUp++;
      else if (payload.t !== undefined) samples.push(at - payload.t);
    },
  });
  try {
    // Warm-up: a few paced jobs, waited for (up to a few poll intervals), not measured.
    for (let n = 0; n < WARM_UP_JOBS; n++) {
      await system.enqueueOne({ i: -1 - n, t: nowMs() });
      await sleep(1000 / rate);
    }
    await until(() => warmedUp >= WARM_UP_JOBS, 5_000);

    const interval = 1000 / rate;
    const start = nowMs();
    for (let n = 0; n < total; n++) {
      await sleep(start + n * interval - nowMs());
      await system.enqueueOne({ i: n, t: nowMs() });
    }
    // Wait for the last handlers: longer than pg-boss's default 2 s polling interval.
    await until(() => samples.length >= total, context.options.settleSeconds * 1000);
  } finally {
    await stopWorker(worker, context, `${system.system}/${system.config} latency`);
  }
  return {
    p50_ms: percentile(samples, 50),
    p95_ms: percentile(samples, 95),
    p99_ms: percentile(samples, 99),
    jobs: samples.length,
    seconds: latencySeconds,
    lost: total - Math.min(total, samples.length),
  };
}

/** Resolves when `condition` holds (checked every 10 ms) or after `ms`. */
async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = nowMs() + ms;
  while (!condition() && nowMs() < deadline) await sleep(10);
}
