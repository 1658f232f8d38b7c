import type { QueueBenchOptions } from "../../src/cli/bench-flags.js";
import type { BenchEnvironment, BenchPayload, RunningWorker } from "../systems/types.js";
import { withDeadline } from "../time.js";

/** What every workload gets besides the system under test. */
export interface WorkloadContext {
  env: BenchEnvironment;
  options: QueueBenchOptions;
  log: (line: string) => void;
  /** Records a note for the report (something went wrong but the measurement stands). */
  warn: (note: string) => void;
}

/** How long a system's setup (schema, migrations, connections) may take. */
export const SETUP_DEADLINE_MS = 120_000;

/** How long a worker may take to stop, or a system to tear down, before the run moves on. */
export const STOP_DEADLINE_MS = 30_000;

/** Stops a worker; one that hangs is left behind with a note instead of stalling the run. */
export async function stopWorker(
  worker: RunningWorker,
  context: WorkloadContext,
  what: string,
): Promise<void> {
  try {
    await withDeadline(worker.stop(), STOP_DEADLINE_MS, `${what}: worker.stop()`);
  } catch (error) {
    context.warn(error instanceof Error ? error.message : String(error));
  }
}

/** Payloads numbered from `from`, each a small JSON object. */
export function payloads(count: number, from = 0): BenchPayload[] {
  return Array.from({ length: count }, (_, n) => ({ i: from + n }));
}
