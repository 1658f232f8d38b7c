import type { QueueBenchOptions } from "../src/cli/bench-flags.js";
import type { Measurement, QueueWorkload } from "./results.js";
import type { BenchEnvironment, ConfigName, QueueSystemName } from "./systems/types.js";

/**
 * What bench/system-child.ts is started with (its one argument, as JSON): one
 * system in one configuration, and the workloads to run it through.
 */
export interface SystemChildArguments {
  system: QueueSystemName;
  config: ConfigName;
  workloads: QueueWorkload[];
  options: QueueBenchOptions;
  env: BenchEnvironment;
}

export type SystemChildMessage =
  | { type: "result"; workload: QueueWorkload; measurement: Measurement }
  /** Something went wrong but the run goes on (a failed workload, a hung stop). */
  | { type: "note"; text: string };

/** What bench/worker-child.ts is started with (its one argument, as JSON). */
export interface ChildArguments {
  system: QueueSystemName;
  config: ConfigName;
  env: BenchEnvironment;
  concurrency: number;
  /**
   * process_limited: each handler awaits a sleep of this many ms, and the
   * child records when every handler started and ended (see "handlers").
   */
  handlerMs?: number;
}

export type ParentMessage = { type: "start" } | { type: "stop" };

export type ChildMessage =
  /** attach() done; waiting for "start". */
  | { type: "ready" }
  /** Handlers started so far, and when the latest one started (epoch ms, see time.ts). */
  | { type: "count"; count: number; lastAt: number }
  /**
   * With `handlerMs`, once its worker has stopped (every handler returned):
   * when each handler started and ended (epoch ms, see time.ts), unpaired.
   */
  | { type: "handlers"; starts: number[]; ends: number[] }
  | { type: "stopped" }
  | { type: "error"; message: string };
