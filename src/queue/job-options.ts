import { unstorableEscape } from "../db/jsonb.js";
import { RotaError } from "../errors.js";
import { type BackoffPolicy, validateBackoff } from "./backoff.js";

/** Options for one enqueued job. */
export interface EnqueueOptions {
  /** Queue name; default the task's queue, else "default". */
  queue?: string;
  /** When to run: a Date, or use `delayMs`. Default now (the database's clock). */
  runAt?: Date;
  /** Milliseconds from now (the database's clock). */
  delayMs?: number;
  /** Higher runs first; default 0. */
  priority?: number;
  /** Attempts before the job is left in 'failed'; default the task's, else 25. */
  maxAttempts?: number;
  backoff?: BackoffPolicy;
  /** The handler's signal aborts after this long and the attempt fails. */
  timeoutMs?: number;
  /** At most one queued (not yet started) job per key. */
  uniqueKey?: string;
  /**
   * What a second enqueue with a queued job's unique key does: "keep" the
   * existing job (default), or "replace" its payload, run time and options
   * while it has not started (coalescing).
   */
  onConflict?: "keep" | "replace";
  /**
   * A key the job runs under, such as a tenant id: at most
   * `concurrencyLimit` jobs of one key run at once, across all workers.
   * Default the task's.
   */
  concurrencyKey?: string;
  /**
   * How many jobs of the key may run at once (default 1). Given without a
   * key, the key is the task's name: at most this many of the task at once.
   */
  concurrencyLimit?: number;
}

export const DEFAULT_QUEUE = "default";
export const DEFAULT_MAX_ATTEMPTS = 25;
export const DEFAULT_PAYLOAD_LIMIT_BYTES = 1024 * 1024;

// The SQL function enqueue (migration 0015) checks its input by these same
// rules, with the same codes: a change to a rule here is a new migration there.
const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const TASK_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;
export const INT32_MAX = 2_147_483_647;

export function validateQueueName(queue: unknown, field = "queue"): string {
  if (typeof queue !== "string" || !NAME.test(queue)) {
    throw new RotaError(
      "INVALID_QUEUE_NAME",
      `Invalid ${field} ${JSON.stringify(queue)}: use 1-128 characters of letters, digits, "_", ".", ":" or "-".`,
      { details: { field, value: queue } },
    );
  }
  return queue;
}

export function validateTaskName(task: unknown): string {
  if (typeof task !== "string" || !TASK_NAME.test(task)) {
    throw new RotaError(
      "INVALID_TASK_NAME",
      `Invalid task name ${JSON.stringify(task)}: use 1-128 characters of letters, digits, "_", ".", ":", "/" or "-".`,
      { details: { field: "task", value: task } },
    );
  }
  return task;
}

/**
 * The longest delay before a job runs: 10^14 ms, about 3,000 years, so the
 * run time stays within the years runAt takes.
 */
export const MAX_DELAY_MS = 1e14;
/** runAt between the years 1 and 9999: what PostgreSQL and an ISO date both hold. */
const MIN_RUN_AT_MS = Date.parse("0001-01-01T00:00:00Z");
const MAX_RUN_AT_MS = Date.parse("9999-12-31T23:59:59.999Z");
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Text PostgreSQL can store: no NUL character (text refuses it) and no
 * unpaired UTF-16 surrogate (it cannot be encoded as UTF-8).
 */
export function storableText(value: string): boolean {
  return !value.includes("\u0000") && !LONE_SURROGATE.test(value);
}

/** The payload as JSON text, refusing what JSON cannot carry and what is too large. */
export function serializePayload(task: string, payload: unknown, limitBytes: number): string {
  let text: string | undefined;
  try {
    const value = payload === undefined ? {} : payload;
    // A replacer makes JSON.stringify call back into JavaScript for every
    // key, which was most of the cost of checking a large enqueueMany list.
    // The walk below finds the same values without it; only a payload it
    // flags goes through the replacer, for the error message.
    text = isPlainJson(value, 0)
      ? JSON.stringify(value)
      : JSON.stringify(value, rejectUnserializable);
  } catch (cause) {
    throw new RotaError(
      "INVALID_PAYLOAD",
      `Payload for task "${task}" is not JSON-serializable: ${(cause as Error).message}.`,
      { cause, details: { task } },
    );
  }
  if (text === undefined) {
    throw new RotaError(
      "INVALID_PAYLOAD",
      `Payload for task "${task}" is not JSON-serializable (got ${typeof payload}).`,
      { details: { task } },
    );
  }
  const unstorable = unstorableEscape(text);
  if (unstorable !== null) {
    throw new RotaError(
      "INVALID_PAYLOAD",
      `Payload for task "${task}" contains ${unstorable}, which PostgreSQL's jsonb cannot store: strip it, or base64-encode binary data.`,
      { details: { task } },
    );
  }
  // A UTF-16 code unit is at most 3 bytes of UTF-8: short text needs no count.
  const bytes = text.length * 3 <= limitBytes ? 0 : Buffer.byteLength(text, "utf8");
  if (bytes > limitBytes) {
    throw new RotaError(
      "PAYLOAD_TOO_LARGE",
      `Payload for task "${task}" is ${bytes} bytes, over the ${limitBytes}-byte limit: store large data elsewhere and enqueue a reference, or raise payloadLimitBytes.`,
      { details: { task, bytes, limitBytes } },
    );
  }
  return text;
}

/**
 * True when JSON.stringify(value) needs no checking: only strings, finite
 * numbers, booleans, null, and arrays and plain objects of those, not nested
 * too deep. Anything else (a toJSON method, a bigint, a function, NaN, a
 * class instance, deep nesting) answers false and is left to the replacer.
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (depth > 32) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (!isPlainJson(item, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      const record = value as Record<string, unknown>;
      if ("toJSON" in record) return false;
      for (const key in record) {
        if (!isPlainJson(record[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

// JSON.stringify silently drops functions and symbols and turns NaN into
// null; a job must run with the payload the caller meant, so these are refused.
function rejectUnserializable(key: string, value: unknown): unknown {
  const where = key === "" ? "the payload" : `"${key}"`;
  if (typeof value === "function" || typeof value === "symbol") {
    throw new Error(`${where} is a ${typeof value}`);
  }
  if (typeof value === "bigint") throw new Error(`${where} is a bigint (send it as a string)`);
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`${where} is ${value}`);
  return value;
}

export interface NormalizedJob {
  queue: string;
  task: string;
  payload: string;
  priority: number;
  delayMs: number | null;
  runAt: Date | null;
  maxAttempts: number;
  backoff: string | null;
  timeoutMs: number | null;
  uniqueKey: string | null;
  conflict: "keep" | "replace";
  /** With a limit (concurrencyLimit), or null with none. */
  concurrencyKey: string | null;
  concurrencyLimit: number | null;
  /** Its enqueue's trace context (JSON text, migration 0021); null without telemetry. */
  traceContext: string | null;
}

export interface JobDefaults {
  queue?: string;
  maxAttempts?: number;
  backoff?: BackoffPolicy;
  timeoutMs?: number;
  /** The task's concurrency key: a string, or computed from the payload. */
  concurrencyKey?: string | ((payload: never) => string);
  concurrencyLimit?: number;
}

/** What an enqueue's options may hold (`client` is the caller's transaction). */
export const ENQUEUE_OPTION_KEYS = [
  "queue",
  "runAt",
  "delayMs",
  "priority",
  "maxAttempts",
  "backoff",
  "timeoutMs",
  "uniqueKey",
  "onConflict",
  "concurrencyKey",
  "concurrencyLimit",
  "client",
] as const;

/**
 * Refuses a key `value` does not take, naming the ones it does (and the
 * likely one meant), so a misspelt option is not silently ignored.
 */
export function rejectUnknownKeys(
  value: object,
  known: readonly string[],
  where: string,
  hint: (key: string) => string | undefined = () => undefined,
): void {
  for (const key in value) {
    if (known.includes(key)) continue;
    const near = known.find((k) => k.toLowerCase().startsWith(key.toLowerCase().slice(0, 4)));
    const advice = hint(key) ?? (near ? `did you mean "${near}"?` : `use ${known.join(", ")}`);
    throw new RotaError("INVALID_OPTION", `${where}: unknown "${key}"; ${advice}`, {
      details: { field: key },
    });
  }
}

/** Checks every option of one job; throws a RotaError naming the field. */
export function normalizeJob(
  task: string,
  payloadJson: string,
  options: EnqueueOptions,
  defaults: JobDefaults,
  payload?: unknown,
): NormalizedJob {
  if (typeof options !== "object" || options === null) {
    throw new RotaError("INVALID_OPTION", "Enqueue options must be an object.", {
      details: { field: "options" },
    });
  }
  rejectUnknownKeys(options, ENQUEUE_OPTION_KEYS, "Enqueue options");
  const queue = validateQueueName(options.queue ?? defaults.queue ?? DEFAULT_QUEUE);
  if (options.runAt !== undefined && options.delayMs !== undefined) {
    throw new RotaError("INVALID_RUN_AT", "Give runAt or delayMs, not both.", {
      details: { field: "runAt" },
    });
  }
  if (
    options.runAt !== undefined &&
    (!(options.runAt instanceof Date) ||
      Number.isNaN(options.runAt.getTime()) ||
      options.runAt.getTime() < MIN_RUN_AT_MS ||
      options.runAt.getTime() > MAX_RUN_AT_MS)
  ) {
    throw new RotaError(
      "INVALID_RUN_AT",
      `runAt must be a valid Date between the years 1 and 9999, got ${String(options.runAt)}.`,
      {
        details: { field: "runAt" },
      },
    );
  }
  if (
    options.delayMs !== undefined &&
    (typeof options.delayMs !== "number" ||
      !Number.isFinite(options.delayMs) ||
      options.delayMs < 0 ||
      options.delayMs > MAX_DELAY_MS)
  ) {
    throw new RotaError(
      "INVALID_RUN_AT",
      `delayMs must be a number of milliseconds from 0 to ${MAX_DELAY_MS} (about 3,000 years), got ${String(options.delayMs)}.`,
      { details: { field: "delayMs", value: options.delayMs } },
    );
  }
  const priority = options.priority ?? 0;
  if (!Number.isInteger(priority) || Math.abs(priority) > INT32_MAX) {
    throw new RotaError(
      "INVALID_PRIORITY",
      `priority must be a whole number, got ${String(priority)}.`,
      {
        details: { field: "priority", value: priority },
      },
    );
  }
  const maxAttempts = options.maxAttempts ?? defaults.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > INT32_MAX) {
    throw new RotaError(
      "INVALID_MAX_ATTEMPTS",
      `maxAttempts must be a whole number of at least 1, got ${String(maxAttempts)}.`,
      { details: { field: "maxAttempts", value: maxAttempts } },
    );
  }
  const timeoutMs = options.timeoutMs ?? defaults.timeoutMs ?? null;
  if (
    timeoutMs !== null &&
    (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > INT32_MAX)
  ) {
    throw new RotaError(
      "INVALID_OPTION",
      `timeoutMs must be a whole number of milliseconds >= 1, got ${String(timeoutMs)}.`,
      { details: { field: "timeoutMs", value: timeoutMs } },
    );
  }
  const backoffPolicy = options.backoff ?? defaults.backoff;
  const uniqueKey = options.uniqueKey ?? null;
  if (
    uniqueKey !== null &&
    (typeof uniqueKey !== "string" ||
      uniqueKey === "" ||
      uniqueKey.length > 512 ||
      !storableText(uniqueKey))
  ) {
    throw new RotaError(
      "INVALID_OPTION",
      "uniqueKey must be a non-empty string of at most 512 characters, without NUL characters or unpaired surrogates.",
      {
        details: { field: "uniqueKey" },
      },
    );
  }
  const conflict = options.onConflict ?? "keep";
  if (conflict !== "keep" && conflict !== "replace") {
    throw new RotaError(
      "INVALID_OPTION",
      `onConflict must be "keep" or "replace", got ${String(conflict)}.`,
      {
        details: { field: "onConflict", value: conflict },
      },
    );
  }
  const concurrency = concurrencyOf(task, options, defaults, payload);
  return {
    queue,
    task,
    payload: payloadJson,
    priority,
    // Below a nanosecond is no delay (timestamps resolve microseconds), and
    // such a fraction (5e-324 ms) underflows the database's division.
    delayMs: options.delayMs === undefined ? null : options.delayMs < 1e-6 ? 0 : options.delayMs,
    runAt: options.runAt ?? null,
    maxAttempts,
    backoff: backoffPolicy === undefined ? null : JSON.stringify(validateBackoff(backoffPolicy)),
    timeoutMs,
    uniqueKey,
    conflict,
    concurrencyKey: concurrency?.key ?? null,
    concurrencyLimit: concurrency?.limit ?? null,
    // Set by the enqueue's send span (telemetry.ts), when there is one.
    traceContext: null,
  };
}

/**
 * Keys rota gives its own jobs: executions with an overlap policy
 * (schedules.sql) and sweep instances (sweeps.sql); a caller's key, or a task
 * name standing for one, may not pose as one.
 */
const RESERVED_KEY_PREFIXES = ["schedule:", "sweep:"];

/**
 * The job's concurrency key and limit, from its options, else its task's
 * (a key computed from the payload is computed here): none when neither
 * gives a key or a limit.
 */
function concurrencyOf(
  task: string,
  options: EnqueueOptions,
  defaults: JobDefaults,
  payload: unknown,
): { key: string; limit: number } | null {
  const limit = options.concurrencyLimit ?? defaults.concurrencyLimit ?? null;
  let key: unknown = options.concurrencyKey ?? defaults.concurrencyKey ?? null;
  if (typeof key === "function" && options.concurrencyKey === undefined) {
    try {
      key = (key as (payload: unknown) => unknown)(payload);
    } catch (cause) {
      throw new RotaError(
        "INVALID_OPTION",
        `The concurrencyKey function of task "${task}" threw: ${(cause as Error)?.message ?? String(cause)}.`,
        { cause, details: { field: "concurrencyKey", task } },
      );
    }
  }
  if (key === null && limit === null) return null;
  key ??= task;
  if (
    typeof key !== "string" ||
    key === "" ||
    key.length > 512 ||
    !storableText(key) ||
    RESERVED_KEY_PREFIXES.some((prefix) => (key as string).startsWith(prefix))
  ) {
    throw new RotaError(
      "INVALID_OPTION",
      `concurrencyKey must be a non-empty string of at most 512 characters, without NUL characters or unpaired surrogates, not starting with ${RESERVED_KEY_PREFIXES.map((p) => `"${p}"`).join(" or ")}; got ${JSON.stringify(key) ?? String(key)}.`,
      { details: { field: "concurrencyKey", task } },
    );
  }
  if (limit !== null && (!Number.isInteger(limit) || limit < 1 || limit > INT32_MAX)) {
    throw new RotaError(
      "INVALID_OPTION",
      `concurrencyLimit must be a whole number of at least 1, got ${String(limit)}.`,
      { details: { field: "concurrencyLimit", value: limit, task } },
    );
  }
  return { key, limit: limit ?? 1 };
}
