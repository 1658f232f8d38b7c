import { wholeNumber } from "../config.js";
import { RotaError } from "../errors.js";
import type { EnqueueSpec, TransactionOption } from "../queue/enqueue.js";
import {
  DEFAULT_QUEUE,
  rejectUnknownKeys,
  serializePayload,
  validateQueueName,
} from "../queue/job-options.js";
import type { TaskDefinition } from "../task.js";

/** The job enqueued once when a batch finishes. */
export interface BatchCallback {
  /** Its task, by name or definition. */
  task: EnqueueSpec["task"];
  /**
   * Handed to the callback as `payload` beside the batch's id and counts
   * (see BatchCallbackPayload).
   */
  payload?: unknown;
  /** Default the task's queue, else "default". */
  queue?: string;
}

export interface BatchOptions extends TransactionOption {
  onComplete: BatchCallback;
  /**
   * Milliseconds from now after which the orchestrator finishes the batch
   * with whatever members are still open (default: never).
   */
  expiresInMs?: number;
}

/** What a batch's callback job receives as its payload. */
export interface BatchCallbackPayload<Payload = unknown> {
  /** The batch's id. */
  batch: string;
  succeeded: number;
  /** Members that failed for good (no attempt left). */
  failed: number;
  cancelled: number;
  total: number;
  /** True when the orchestrator finished it at its expiry with members still open. */
  expired: boolean;
  /** onComplete.payload as given. */
  payload: Payload;
  /** Only when expired: the ids of the members still open then. */
  open?: string[];
}

/** A batch's options, checked: the callback as the batches table stores it. */
export interface NormalizedBatch {
  task: string;
  queue: string;
  /** JSON text. */
  payload: string;
  expiresInMs: number | null;
}

const OPTION_KEYS = ["onComplete", "expiresInMs", "client"] as const;
const CALLBACK_KEYS = ["task", "payload", "queue"] as const;

/**
 * Checks a batch's options; throws a RotaError naming the field. The
 * callback's task is resolved by `resolveTask` (registered tasks refuse an
 * unknown name). Its schema, if any, is not applied here: the payload the
 * callback runs with is built when the batch finishes, so a schema on the
 * callback task must describe BatchCallbackPayload.
 */
export function normalizeBatchOptions(
  options: BatchOptions,
  resolveTask: (task: EnqueueSpec["task"]) => TaskDefinition | null,
  payloadLimitBytes: number,
): NormalizedBatch {
  if (typeof options !== "object" || options === null) {
    throw new RotaError(
      "INVALID_OPTION",
      "batches.enqueue takes options { onComplete: { task, payload }, expiresInMs? }.",
      { details: { field: "options" } },
    );
  }
  rejectUnknownKeys(options, OPTION_KEYS, "Batch options");
  const callback = options.onComplete;
  if (typeof callback !== "object" || callback === null) {
    throw new RotaError(
      "INVALID_OPTION",
      "A batch needs onComplete: { task, payload? }, the job to enqueue once when every member has finished.",
      { details: { field: "onComplete" } },
    );
  }
  rejectUnknownKeys(callback, CALLBACK_KEYS, "onComplete");
  if (callback.task === undefined || callback.task === null || callback.task === "") {
    throw new RotaError(
      "INVALID_TASK_NAME",
      "onComplete.task is missing: name the task to enqueue when the batch finishes.",
      { details: { field: "onComplete.task" } },
    );
  }
  const definition = resolveTask(callback.task);
  const task = definition?.name ?? (callback.task as string);
  const queue = validateQueueName(
    callback.queue ?? definition?.queue ?? DEFAULT_QUEUE,
    "onComplete.queue",
  );
  const payload = serializePayload(task, callback.payload, payloadLimitBytes);
  const expiresInMs =
    options.expiresInMs === undefined
      ? null
      : wholeNumber("expiresInMs", options.expiresInMs, 1, Number.MAX_SAFE_INTEGER);
  return { task, queue, payload, expiresInMs };
}

/** The members given to batches.enqueue: a non-empty array. */
export function validateMembers(jobs: unknown): readonly EnqueueSpec[] {
  if (!Array.isArray(jobs) || jobs.length === 0) {
    throw new RotaError(
      "INVALID_OPTION",
      `batches.enqueue takes a non-empty array of jobs ({ task, payload, options }), got ${
        Array.isArray(jobs) ? "an empty array" : typeof jobs
      }: a batch with no members would never finish.`,
      { details: { field: "jobs" } },
    );
  }
  return jobs;
}
