/** What bench/soak/worker-child.ts is started with (its one argument, as JSON). */
export interface SoakChildArguments {
  databaseUrl: string;
  schema: string;
  concurrency: number;
  /** Which worker process (0-based), for its log lines. */
  index: number;
}

/** "start": the run's first minute begins at `at` (epoch ms, nowMs()); "stop": stop and report the rest. */
export type SoakParentMessage = { type: "start"; at: number } | { type: "stop" };

export type SoakChildMessage =
  /** The worker has started, listening and idle. */
  | { type: "ready" }
  /**
   * Since the last progress: each handler's enqueue stamp and its latency
   * (handler start less the stamp, ms), in step; and outcomes written per
   * minute of the run (0-based; past the last minute while the run drains).
   */
  | { type: "progress"; stamps: number[]; latencies: number[]; completed: Record<number, number> }
  | { type: "stopped" }
  | { type: "error"; message: string };
