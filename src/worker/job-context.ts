import type { Logger } from "../logger.js";

/** What a handler receives besides its payload. */
export interface JobInfo {
  id: string;
  queue: string;
  task: string;
  priority: number;
  runAt: Date;
  createdAt: Date;
  attempt: number;
  maxAttempts: number;
  uniqueKey: string | null;
  scheduleId: string | null;
  targetKey: string | null;
  occurrenceAt: Date | null;
}

export interface JobContext {
  job: JobInfo;
  /** 1 on the first run, counting every claimed attempt. */
  attempt: number;
  /**
   * Aborted when the job is cancelled, times out, loses its lease, or the
   * worker is stopping; `signal.reason` is a RotaError saying which.
   */
  signal: AbortSignal;
  /**
   * Logs with the job's fields (jobId, queue, task, attempt, and the
   * worker's workerId) on every line, in pino's order: `(fields, message)`.
   */
  logger: Logger;
  /** Keeps the lease for `ms` more (default: the worker's lease length); heartbeats do this on their own. */
  extendLease(ms?: number): Promise<void>;
}
