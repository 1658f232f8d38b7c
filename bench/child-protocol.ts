import type { BenchEnvironment, ConfigName, QueueSystemName } from "./systems/types.js";

/** What bench/worker-child.ts is started with (its one argument, as JSON). */
export interface ChildArguments {
  system: QueueSystemName;
  config: ConfigName;
  env: BenchEnvironment;
  concurrency: number;
}

export type ParentMessage = { type: "start" } | { type: "stop" };

export type ChildMessage =
  /** attach() done; waiting for "start". */
  | { type: "ready" }
  /** Handlers started so far, and when the latest one started (epoch ms, see time.ts). */
  | { type: "count"; count: number; lastAt: number }
  | { type: "stopped" }
  | { type: "error"; message: string };
