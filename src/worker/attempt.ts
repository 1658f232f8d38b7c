import { validateMillis } from "../config.js";
import { storableJson } from "../db/jsonb.js";
import { describeThrown, RotaError } from "../errors.js";
import type { RotaEvents } from "../events.js";
import { childLogger, type Logger } from "../logger.js";
import { backoffDelay } from "../queue/backoff.js";
import { type TaskDefinition, type TaskHandler, validatePayload } from "../task.js";
import type { ProcessSpan, Telemetry } from "../telemetry/telemetry.js";
import type { Failure, Success } from "./completer.js";
import type { ClaimedRow } from "./held-jobs.js";
import type { JobContext, JobInfo } from "./job-context.js";

/** What an attempt needs from the worker that runs it. */
export interface AttemptEnvironment {
  workerId: string;
  leaseMs: number;
  logger: Logger;
  events: RotaEvents;
  /** Null without telemetry: then an attempt does nothing for it but check that. */
  telemetry: Telemetry | null;
  /** Extends the attempt's lease by `ms`; false when the worker no longer holds it. */
  extendLease(row: ClaimedRow, ms: number): Promise<boolean>;
  /** Takes the attempt's outcome; called once per attempt (see Attempt.settled). */
  settle(attempt: Attempt, outcome: Outcome, durationMs: number): void;
  reportError(during: string, error: unknown): void;
}

/** The outcome of a handler that returned. */
export const SUCCEEDED = Symbol("succeeded");
/** What an attempt ends with: success, or what it threw (any value, null included). */
export type Outcome = typeof SUCCEEDED | { thrown: unknown };

/** Why a running attempt's signal is aborted. */
export type AbortCode = "JOB_CANCELLED" | "LEASE_LOST" | "SHUTTING_DOWN";

/**
 * One attempt of a job in this worker: its handler run with a context, a
 * timeout and an abort signal, and the outcome handed over once.
 *
 * On timeout the outcome is recorded at once, but the attempt keeps its
 * handler slot until the handler really returns (`done`), so no more than
 * `concurrency` handlers ever run at once (see HeldJobs).
 */
export class Attempt {
  /**
   * Made when the handler first reads its signal: an AbortController per job
   * was a tenth of a no-op job's time in the worker, and most handlers never
   * look. Until then an abort only records its reason.
   */
  private controller: AbortController | null = null;
  /** Why the attempt was aborted (a RotaError); undefined while it was not. */
  private abortReason: RotaError | undefined;
  /** Set once the outcome was handed over (a timeout may do it early). */
  settled = false;
  /** Set when a heartbeat found the job rescued from this worker: no lease left to renew. */
  leaseLost = false;
  /** Set when the attempt timed out while the handler kept running. */
  timedOut = false;
  /** Resolves when the handler has returned. */
  done: Promise<void> = Promise.resolve();

  constructor(
    readonly row: ClaimedRow,
    private readonly task: TaskDefinition,
  ) {}

  abort(code: AbortCode, why: string): void {
    if (this.abortReason !== undefined) return;
    this.abortWith(new RotaError(code, `Job ${this.row.id}: ${why}.`));
  }

  /** The handler's abort signal (already aborted when the attempt was). */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  private abortWith(reason: RotaError): void {
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  /** Runs the handler to its end and hands the outcome to `env.settle`. */
  async run(handler: TaskHandler<unknown>, env: AttemptEnvironment): Promise<void> {
    const { row, task } = this;
    const started = performance.now();
    const span = env.telemetry === null ? null : env.telemetry.process([row], env.workerId, false);
    const settle = (outcome: Outcome) => {
      env.settle(this, outcome, performance.now() - started);
      if (span !== null) {
        settleSpan(span, row, outcome);
        span.end();
      }
    };
    this.announce(env);
    const timeout = startTimeout(
      row.timeout_ms ?? task.timeoutMs ?? null,
      `Job ${row.id} (${row.task})`,
      (reason) => this.timeOut(reason),
    );
    try {
      const payload = await this.payload();
      const call = () => handler(payload, this.context(env));
      const handling = Promise.resolve().then(span === null ? call : () => span.run(call));
      try {
        // On timeout the attempt is recorded at once ...
        await (timeout.expired ? Promise.race([handling, timeout.expired]) : handling);
        settle(SUCCEEDED);
      } catch (error) {
        settle({ thrown: error });
      }
      // ... but the slot stays taken until the handler really returns.
      await handling.catch(() => {});
    } catch (error) {
      settle({ thrown: error });
    } finally {
      timeout.clear();
    }
  }

  /** job:run:start, as each attempt announces it. */
  announce(env: AttemptEnvironment): void {
    const { row } = this;
    env.events.emit("job:run:start", {
      id: row.id,
      queue: row.queue,
      task: row.task,
      attempt: row.attempts,
      workerId: env.workerId,
    });
  }

  /** The payload the task's schema gives; PayloadRefused when it fails it. */
  async payload(): Promise<unknown> {
    return validatePayload(this.task, this.row.payload).catch((error: unknown) => {
      // A payload that fails its schema will fail every attempt: no retry.
      throw new PayloadRefused(error);
    });
  }

  /** The attempt ran out of time: its signal is aborted with the reason. */
  timeOut(reason: RotaError): void {
    this.timedOut = true;
    if (this.abortReason === undefined) this.abortWith(reason);
  }

  /** A success as the completer writes it. */
  success(durationMs: number): Success {
    const { row } = this;
    return {
      id: row.id,
      attempt: row.attempts,
      queue: row.queue,
      frees: freedQueue(row),
      // Schedule executions stay, as 'succeeded', for their history.
      keep: row.schedule_id !== null,
      event: { id: row.id, queue: row.queue, task: row.task, attempt: row.attempts, durationMs },
    };
  }

  /** A failure as the completer writes it: retried after a delay while attempts are left. */
  failure(thrown: unknown, env: AttemptEnvironment): Failure {
    const { row } = this;
    const ref = { id: row.id, queue: row.queue, task: row.task, attempt: row.attempts };
    const cancelled = this.abortReason?.code === "JOB_CANCELLED";
    const noRetry = thrown instanceof PayloadRefused;
    const error = noRetry ? thrown.cause : thrown;
    const described = describeThrown(error);
    const retryMs =
      !cancelled && !noRetry && row.attempts < row.max_attempts
        ? this.retryDelay(error, env)
        : null;
    return {
      id: row.id,
      attempt: row.attempts,
      queue: row.queue,
      frees: freedQueue(row),
      error: failureJson(described.message, described.stack, row.attempts, env.workerId),
      retryMs,
      cancelled,
      event: cancelled
        ? { name: "job:cancelled", payload: { id: row.id, previousState: "running" } }
        : retryMs === null
          ? { name: "job:failed", payload: { ...ref, error: described.message } }
          : { name: "job:run:retry", payload: { ...ref, error: described.message } },
    };
  }

  /**
   * The pause before the next attempt: the task's retryDelay, or the job's
   * backoff when there is none or it throws or gives no usable number; at
   * most MAX_DELAY_MS, so the run time stays a valid timestamp.
   */
  private retryDelay(error: unknown, env: AttemptEnvironment): number {
    let ms = Number.NaN;
    if (this.task.retryDelay) {
      try {
        ms = this.task.retryDelay(this.row.attempts, error);
      } catch (retryDelayError) {
        env.reportError("retryDelay", retryDelayError);
      }
    }
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      ms = backoffDelay(this.row.backoff, this.row.attempts);
    }
    return Math.min(ms, MAX_DELAY_MS);
  }

  /** What the handler is told about the job. */
  jobInfo(): JobInfo {
    const { row } = this;
    return {
      id: row.id,
      queue: row.queue,
      task: row.task,
      priority: row.priority,
      runAt: row.run_at,
      createdAt: row.created_at,
      attempt: row.attempts,
      maxAttempts: row.max_attempts,
      uniqueKey: row.unique_key,
      scheduleId: row.schedule_id,
      targetKey: row.target_key,
      occurrenceAt: row.occurrence_at,
    };
  }

  private context(env: AttemptEnvironment): JobContext {
    const attempt = this;
    const { row } = this;
    let logger: Logger | undefined;
    return {
      job: this.jobInfo(),
      attempt: row.attempts,
      get signal() {
        return attempt.signal;
      },
      // Made when the handler first asks for it: a child logger per job (a
      // pino child binds its fields) is work most handlers never need.
      get logger() {
        logger ??= childLogger(env.logger, {
          jobId: row.id,
          queue: row.queue,
          task: row.task,
          attempt: row.attempts,
        });
        return logger;
      },
      extendLease: async (ms = env.leaseMs) => {
        validateLeaseExtension(ms);
        if (!(await env.extendLease(row, ms))) {
          throw new RotaError(
            "LEASE_LOST",
            `Job ${row.id} is no longer leased to this worker (it was rescued).`,
          );
        }
      },
    };
  }
}

/** One job's outcome on its handler call's span (what a refused payload failed with, unwrapped). */
export function settleSpan(span: ProcessSpan, row: ClaimedRow, outcome: Outcome): void {
  if (outcome === SUCCEEDED) span.settled(row, false);
  else {
    const { thrown } = outcome;
    span.settled(row, true, thrown instanceof PayloadRefused ? thrown.cause : thrown);
  }
}

/** The failure of a job cancelled while it waited in the buffer: it never started. */
export function cancelledBeforeStart(row: ClaimedRow, workerId: string): Failure {
  return {
    id: row.id,
    attempt: row.attempts,
    queue: row.queue,
    frees: freedQueue(row),
    error: failureJson("cancelled before it started", null, row.attempts, workerId),
    retryMs: null,
    cancelled: true,
    event: { name: "job:cancelled", payload: { id: row.id, previousState: "running" } },
  };
}

/** The queue whose limited slot a job's written outcome frees (see Written.frees). */
function freedQueue(row: ClaimedRow): string | null {
  return row.limited ? row.queue : null;
}

/** A payload its task's schema refused before the handler ran: retrying cannot help. */
export class PayloadRefused {
  constructor(readonly cause: unknown) {}
}

/** extendLease(ms): at least 1 ms, at most MAX_DELAY_MS; INVALID_OPTION otherwise. */
export function validateLeaseExtension(ms: number): void {
  validateMillis("extendLease(ms)", ms, 1);
  if (ms > MAX_DELAY_MS) {
    throw new RotaError(
      "INVALID_OPTION",
      `extendLease(ms) takes at most ${MAX_DELAY_MS} ms (100 years), got ${ms}.`,
      { details: { field: "extendLease(ms)", value: ms } },
    );
  }
}

/**
 * A handler call's timeout: after `ms` (null: never) `onTimeout` gets the
 * JOB_TIMEOUT error and `expired` rejects with it.
 */
export function startTimeout(
  ms: number | null,
  what: string,
  onTimeout: (reason: RotaError) => void,
): { expired: Promise<never> | null; clear(): void } {
  if (ms === null) return { expired: null, clear() {} };
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const reason = new RotaError("JOB_TIMEOUT", `${what} timed out after ${ms} ms.`);
      onTimeout(reason);
      reject(reason);
    }, ms);
  });
  expired.catch(() => {});
  return { expired, clear: () => clearTimeout(timer) };
}

/** The longest pause before a retry, or lease extension: 100 years (a time must stay a valid timestamp). */
const MAX_DELAY_MS = 100 * 365 * 24 * 3_600_000;

/**
 * The failure as last_error stores it (the database adds when). As jsonb
 * takes it: without NUL characters or unpaired surrogates, which it refuses
 * (and the write with them).
 */
function failureJson(message: string, stack: string | null, attempt: number, worker: string) {
  return storableJson({ message, stack, attempt, worker });
}
