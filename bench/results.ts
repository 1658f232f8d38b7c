import type { BenchWorkloadName } from "../src/cli/bench-flags.js";
import { round } from "./stats.js";
import type { ConfigName, SystemName } from "./systems/types.js";

export type WorkloadName = BenchWorkloadName;

/** The workloads run through a queue system (the ceiling is plain pg's alone). */
export type QueueWorkload = Exclude<WorkloadName, "insert_commit_ceiling">;

/** What one workload measured. Throughput workloads set jobs_per_s; latency sets the percentiles. */
export interface Measurement {
  jobs_per_s?: number;
  p50_ms?: number;
  p95_ms?: number;
  p99_ms?: number;
  /** Jobs counted in the measurement (enqueued, processed, or latency samples). */
  jobs: number;
  /** Wall time measured, in seconds. */
  seconds: number;
  /** process_*: false when the time cap stopped the run before every job was processed. */
  complete?: boolean;
  /** latency: jobs whose handler had not started when the wait after the last enqueue ended. */
  lost?: number;
  /** process_limited: the most handlers running at once, across both worker processes. */
  max_concurrency?: number;
  /** process_limited: the queue's limit (rota.queues.setLimit). */
  concurrency_limit?: number;
  /** process_limited: true when more than the limit ran at once (the limit failed). */
  limit_exceeded?: boolean;
}

export interface BenchResult extends Measurement {
  system: SystemName;
  config: ConfigName;
  workload: WorkloadName;
}

/** Rounds for printing and JSON: jobs/s to 0.1, milliseconds to 0.01. */
export function rounded(measurement: Measurement): Measurement {
  const to = (value: number | undefined, places: number) =>
    value === undefined ? undefined : round(value, places);
  const out: Measurement = {
    jobs_per_s: to(measurement.jobs_per_s, 1),
    p50_ms: to(measurement.p50_ms, 2),
    p95_ms: to(measurement.p95_ms, 2),
    p99_ms: to(measurement.p99_ms, 2),
    jobs: measurement.jobs,
    seconds: round(measurement.seconds, 3),
    complete: measurement.complete,
    lost: measurement.lost,
    max_concurrency: measurement.max_concurrency,
    concurrency_limit: measurement.concurrency_limit,
    limit_exceeded: measurement.limit_exceeded,
  };
  for (const key of Object.keys(out) as (keyof Measurement)[]) {
    if (out[key] === undefined) delete out[key];
  }
  return out;
}
