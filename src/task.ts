import type { StandardSchemaV1 } from "@standard-schema/spec";
import { RotaError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { BackoffFunction, BackoffPolicy } from "./queue/backoff.js";
import type { JobContext, JobInfo } from "./worker/job-context.js";

export type TaskHandler<Payload> = (
  payload: Payload,
  context: JobContext,
) => Promise<unknown> | unknown;

/** One job of a batch, as a batch handler receives it. */
export interface BatchJob<Payload> {
  id: string;
  payload: Payload;
  job: JobInfo;
  /** Aborted when this job is cancelled or loses its lease (or the whole batch times out or stops). */
  signal: AbortSignal;
}

/** What a batch handler receives besides its jobs. */
export interface BatchContext {
  /** Aborted once every job of the batch is aborted (timeout, stop, or each one cancelled). */
  signal: AbortSignal;
  logger: Logger;
  /**
   * Keeps every job's lease for `ms` more (default: the worker's lease
   * length); heartbeats do this on their own. Rejects with LEASE_LOST naming
   * the jobs no longer leased to this worker (the others are extended).
   */
  extendLease(ms?: number): Promise<void>;
}

/** One job's outcome, as a batch handler may return it (in the order the jobs came). */
export type BatchOutcome = { ok: true } | { ok: false; error: unknown };

/**
 * Handles up to `batch.size` jobs of one task at once. Returns nothing when
 * every job succeeded, or one outcome per job in the order given; throws to
 * fail them all.
 */
export type BatchHandler<Payload> = (
  jobs: BatchJob<Payload>[],
  context: BatchContext,
) =>
  | Promise<readonly BatchOutcome[] | undefined | void>
  | readonly BatchOutcome[]
  | undefined
  | void;

/** How a batch task's jobs are gathered. */
export interface BatchHandlerOptions {
  /** The most jobs handed to one call, 1 to 1,000. */
  size: number;
  /**
   * How long the worker holds a partial batch, from when its first job was
   * claimed, for more jobs of the task to arrive; default 0 (it runs what
   * the worker holds now).
   */
  waitMs?: number;
}

/**
 * Computes a job's concurrency key from its payload. Declared as a method so
 * a task of any payload type fits where tasks of unknown payload go.
 */
type KeyOfPayload<Input> = { key(payload: Input): string }["key"];

/** What every task declares besides its handler. */
interface TaskCommon<Input, Payload> {
  readonly name: string;
  /** Any Standard Schema validator (zod, valibot, arktype, …). */
  readonly schema?: StandardSchemaV1<Input, Payload>;
  readonly queue?: string;
  readonly maxAttempts?: number;
  readonly timeoutMs?: number;
  /** Stored with each job; the worker computes retry delays from it. */
  readonly backoff?: BackoffPolicy;
  /** Overrides `backoff` in the worker: return the delay in ms before the next attempt. */
  readonly retryDelay?: BackoffFunction;
  /**
   * The concurrency key of its jobs (an enqueue's own option wins): a string,
   * or computed from the payload at enqueue (a tenant id, say). See
   * `concurrencyLimit`.
   */
  readonly concurrencyKey?: string | KeyOfPayload<Input>;
  /**
   * At most this many of its jobs with one key run at once, across all
   * workers (default 1 when a key is given). Without a key: at most this many
   * jobs of the task at once.
   */
  readonly concurrencyLimit?: number;
  /** Marks the type so inference works on `tasks` maps. */
  readonly __input?: Input;
}

/** A task whose handler takes one job at a time. */
export interface SingleTaskDefinition<Input = unknown, Payload = Input>
  extends TaskCommon<Input, Payload> {
  readonly handler: TaskHandler<Payload>;
  readonly batch?: undefined;
  readonly batchHandler?: undefined;
}

/**
 * A task whose `batchHandler` takes up to `batch.size` claimed jobs at once
 * (a bulk call to an external API, say); each job still succeeds or fails on
 * its own. (A name of its own, not `handler`: the two take different
 * arguments, and TypeScript types an inline `handler` only when one
 * signature can be meant.)
 */
export interface BatchTaskDefinition<Input = unknown, Payload = Input>
  extends TaskCommon<Input, Payload> {
  readonly batch: BatchHandlerOptions;
  readonly batchHandler: BatchHandler<Payload>;
  readonly handler?: undefined;
}

/** A task: a name, an optional payload schema, a handler, and per-task defaults. */
export type TaskDefinition<Input = unknown, Payload = Input> =
  | SingleTaskDefinition<Input, Payload>
  | BatchTaskDefinition<Input, Payload>;

/**
 * Defines a task. With a schema the payload is checked at enqueue and again
 * before the handler runs, and the handler's payload type is the schema's output.
 */
export function defineTask<Schema extends StandardSchemaV1>(
  definition: Omit<
    SingleTaskDefinition<StandardSchemaV1.InferInput<Schema>, StandardSchemaV1.InferOutput<Schema>>,
    "schema" | "__input"
  > & { schema: Schema },
): SingleTaskDefinition<StandardSchemaV1.InferInput<Schema>, StandardSchemaV1.InferOutput<Schema>>;
export function defineTask<Payload = unknown>(
  definition: Omit<SingleTaskDefinition<Payload, Payload>, "schema" | "__input">,
): SingleTaskDefinition<Payload, Payload>;
export function defineTask(definition: SingleTaskDefinition): SingleTaskDefinition {
  return Object.freeze({ ...definition });
}

/**
 * Defines a batch task: the worker hands its `batchHandler` up to `batch.size`
 * claimed jobs of the task at once, waiting up to `batch.waitMs` for a
 * partial batch to fill. Each job is validated against the schema on its
 * own (one that fails is refused without the others), and succeeds or fails
 * on its own.
 */
export function defineBatchTask<Schema extends StandardSchemaV1>(
  definition: Omit<
    BatchTaskDefinition<StandardSchemaV1.InferInput<Schema>, StandardSchemaV1.InferOutput<Schema>>,
    "schema" | "__input"
  > & { schema: Schema },
): BatchTaskDefinition<StandardSchemaV1.InferInput<Schema>, StandardSchemaV1.InferOutput<Schema>>;
export function defineBatchTask<Payload = unknown>(
  definition: Omit<BatchTaskDefinition<Payload, Payload>, "schema" | "__input">,
): BatchTaskDefinition<Payload, Payload>;
export function defineBatchTask(definition: BatchTaskDefinition): BatchTaskDefinition {
  return Object.freeze(checkedHandlers(definition) as BatchTaskDefinition);
}

/** The most jobs one batch handler call takes. */
export const MAX_BATCH_SIZE = 1_000;

/** A task's batch options checked, `waitMs` filled in; INVALID_OPTION naming the field otherwise. */
function batchOptions(definition: {
  name: string;
  batch?: unknown;
}): Required<BatchHandlerOptions> {
  const batch = definition.batch as BatchHandlerOptions | null;
  const field = `tasks.${definition.name}.batch`;
  const refuse = (what: string, value: unknown) =>
    new RotaError("INVALID_OPTION", `${field}${what}`, { details: { field, value } });
  if (batch === null || typeof batch !== "object") {
    throw refuse(" must be { size, waitMs? }.", batch);
  }
  const { size, waitMs = 0 } = batch;
  if (!Number.isInteger(size) || size < 1 || size > MAX_BATCH_SIZE) {
    throw refuse(
      `.size must be a whole number from 1 to ${MAX_BATCH_SIZE}, got ${String(size)}.`,
      size,
    );
  }
  if (typeof waitMs !== "number" || !Number.isFinite(waitMs) || waitMs < 0 || waitMs > 3_600_000) {
    throw refuse(
      `.waitMs must be a number of ms from 0 to 3,600,000, got ${String(waitMs)}.`,
      waitMs,
    );
  }
  return { size, waitMs };
}

/** What `worker({ tasks })` and `createRota({ tasks })` accept: definitions, or a map of name to handler. */
export type TaskList =
  // biome-ignore lint/suspicious/noExplicitAny: a list of tasks of different payload types
  | readonly TaskDefinition<any, any>[]
  // biome-ignore lint/suspicious/noExplicitAny: handlers of different payload types
  | Record<string, TaskHandler<any> | TaskDefinition<any, any>>;

export function normalizeTasks(tasks: TaskList): Map<string, TaskDefinition> {
  const byName = new Map<string, TaskDefinition>();
  const add = (definition: TaskDefinition) => {
    if (byName.has(definition.name)) {
      throw new RotaError("INVALID_OPTION", `Task "${definition.name}" is defined twice.`, {
        details: { field: "tasks", task: definition.name },
      });
    }
    byName.set(definition.name, checkedHandlers(definition));
  };
  if (Array.isArray(tasks)) {
    for (const definition of tasks) add(definition);
  } else {
    for (const [name, entry] of Object.entries(tasks)) {
      if (typeof entry === "function") add({ name, handler: entry as TaskHandler<unknown> });
      else if (isTaskDefinition(entry)) {
        add({ ...entry, name: entry.name ?? name });
      } else {
        throw new RotaError(
          "INVALID_OPTION",
          `tasks.${name} must be a handler function, or a defineTask(...) or defineBatchTask(...) definition.`,
          { details: { field: `tasks.${name}` } },
        );
      }
    }
  }
  return byName;
}

/**
 * A definition with exactly the handler its kind takes: `handler` for a
 * task, `batch` with `batchHandler` for a batch task (its options checked).
 */
function checkedHandlers(definition: TaskDefinition): TaskDefinition {
  const loose = definition as { handler?: unknown; batchHandler?: unknown; batch?: unknown };
  const refuse = (message: string) =>
    new RotaError("INVALID_OPTION", `Task "${definition.name}" ${message}`, {
      details: { field: `tasks.${definition.name}`, task: definition.name },
    });
  if (loose.batch === undefined) {
    if (typeof loose.handler !== "function") {
      throw refuse(
        loose.batchHandler === undefined
          ? "has no handler function."
          : "has a batchHandler but no batch: { size, waitMs? } (or use handler).",
      );
    }
    if (loose.batchHandler !== undefined) throw refuse("has both handler and batchHandler.");
    return definition;
  }
  if (typeof loose.batchHandler !== "function") {
    throw refuse(
      "declares batch, so it needs batchHandler(jobs, context) in place of handler(payload, context).",
    );
  }
  if (loose.handler !== undefined) throw refuse("has both handler and batchHandler.");
  return { ...definition, batch: batchOptions(definition) } as TaskDefinition;
}

/** Whether `value` looks like a task definition: an object with a handler or a batch handler. */
export function isTaskDefinition(value: unknown): value is TaskDefinition {
  if (value === null || typeof value !== "object") return false;
  const { handler, batchHandler } = value as Record<string, unknown>;
  return typeof handler === "function" || typeof batchHandler === "function";
}

/** Runs a Standard Schema validator; throws INVALID_PAYLOAD listing the issues. */
export async function validatePayload(task: TaskDefinition, payload: unknown): Promise<unknown> {
  if (!task.schema) return payload;
  let result = task.schema["~standard"].validate(payload);
  if (result instanceof Promise) result = await result;
  if (result.issues) {
    const issues = result.issues.map((issue) => {
      const path = issue.path
        ?.map((segment) => (typeof segment === "object" ? segment.key : segment))
        .join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    });
    throw new RotaError(
      "INVALID_PAYLOAD",
      `Payload for task "${task.name}" does not match its schema: ${issues.join("; ")}.`,
      { details: { task: task.name, issues } },
    );
  }
  return result.value;
}
