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

export interface Logger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
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
  logger: Logger;
  /** Keeps the lease for `ms` more (default: the worker's lease length); heartbeats do this on their own. */
  extendLease(ms?: number): Promise<void>;
}

const write = (level: string, message: string, meta?: Record<string, unknown>) =>
  process.stderr.write(
    `${new Date().toISOString()} ${level} ${message}${meta ? ` ${JSON.stringify(meta)}` : ""}\n`,
  );

/** Writes info and above to stderr. */
export const consoleLogger: Logger = {
  debug: () => {},
  info: (m, meta) => write("info", m, meta),
  warn: (m, meta) => write("warn", m, meta),
  error: (m, meta) => write("error", m, meta),
};

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export function childLogger(parent: Logger, fields: Record<string, unknown>): Logger {
  const merge = (meta?: Record<string, unknown>) => ({ ...fields, ...meta });
  return {
    debug: (m, meta) => parent.debug(m, merge(meta)),
    info: (m, meta) => parent.info(m, merge(meta)),
    warn: (m, meta) => parent.warn(m, merge(meta)),
    error: (m, meta) => parent.error(m, merge(meta)),
  };
}
