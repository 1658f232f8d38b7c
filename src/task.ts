import type { StandardSchemaV1 } from "@standard-schema/spec";
import { RotaError } from "./errors.js";
import type { BackoffFunction, BackoffPolicy } from "./queue/backoff.js";
import type { JobContext } from "./worker/job-context.js";

export type TaskHandler<Payload> = (
  payload: Payload,
  context: JobContext,
) => Promise<unknown> | unknown;

/**
 * Computes a job's concurrency key from its payload. Declared as a method so
 * a task of any payload type fits where tasks of unknown payload go.
 */
type KeyOfPayload<Input> = { key(payload: Input): string }["key"];

/** A task: a name, an optional payload schema, a handler, and per-task defaults. */
export interface TaskDefinition<Input = unknown, Payload = Input> {
  readonly name: string;
  /** Any Standard Schema validator (zod, valibot, arktype, …). */
  readonly schema?: StandardSchemaV1<Input, Payload>;
  readonly handler: TaskHandler<Payload>;
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

/**
 * Defines a task. With a schema the payload is checked at enqueue and again
 * before the handler runs, and the handler's payload type is the schema's output.
 */
export function defineTask<Schema extends StandardSchemaV1>(
  definition: Omit<
    TaskDefinition<StandardSchemaV1.InferInput<Schema>, StandardSchemaV1.InferOutput<Schema>>,
    "schema" | "__input"
  > & { schema: Schema },
): TaskDefinition<StandardSchemaV1.InferInput<Schema>, StandardSchemaV1.InferOutput<Schema>>;
export function defineTask<Payload = unknown>(
  definition: Omit<TaskDefinition<Payload, Payload>, "schema" | "__input">,
): TaskDefinition<Payload, Payload>;
export function defineTask(definition: TaskDefinition): TaskDefinition {
  return Object.freeze({ ...definition });
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
    byName.set(definition.name, definition);
  };
  if (Array.isArray(tasks)) {
    for (const definition of tasks) add(definition);
  } else {
    for (const [name, entry] of Object.entries(tasks)) {
      if (typeof entry === "function") add({ name, handler: entry as TaskHandler<unknown> });
      else if (entry && typeof entry === "object" && typeof entry.handler === "function") {
        add({ ...entry, name: entry.name ?? name });
      } else {
        throw new RotaError(
          "INVALID_OPTION",
          `tasks.${name} must be a handler function or a defineTask(...) definition.`,
          { details: { field: `tasks.${name}` } },
        );
      }
    }
  }
  return byName;
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
