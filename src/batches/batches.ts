import type { Database, Executor } from "../db/database.js";
import { type BatchRow, type BatchSummaryRow, batchQueries } from "../db/queries/batches.js";
import { RotaError } from "../errors.js";
import type { EnqueueResult, Enqueuer, EnqueueSpec } from "../queue/enqueue.js";
import { listLimit, rowId } from "../queue/job-admin.js";
import { type BatchOptions, normalizeBatchOptions, validateMembers } from "./batch-options.js";

/** What batches.enqueue wrote. */
export interface BatchEnqueued {
  /** The batch's id (its callback's payload carries it as `batch`). */
  id: string;
  /** The members, in the order given. */
  jobs: EnqueueResult[];
  createdAt: Date;
  expiresAt: Date | null;
}

/**
 * 'open' while members run; 'finished' once every member has finished and
 * the callback was enqueued; 'expired' when the orchestrator finished it at
 * its expiry with members still open.
 */
export type BatchState = "open" | "finished" | "expired";

export interface BatchSummary {
  id: string;
  state: BatchState;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Members not counted yet (for an expired batch: those open at its expiry). */
  pending: number;
  callbackTask: string;
  callbackQueue: string;
  /** The callback job's id, once enqueued. */
  callbackJobId: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  finishedAt: Date | null;
}

export interface BatchInfo extends BatchSummary {
  callbackPayload: unknown;
  /** The members still open when the batch expired (empty unless it expired). */
  openJobIds: string[];
}

export interface ListBatchesFilter {
  state?: BatchState;
  /** Default 100, at most 10,000. */
  limit?: number;
}

const STATES: readonly BatchState[] = ["open", "finished", "expired"];

/**
 * Batches: a set of jobs with a callback job enqueued exactly once when
 * every member has finished, or when the batch expires with members still
 * open (the orchestrator's expiry step, expiry.ts). See docs/batches.md.
 */
export class Batches {
  constructor(
    private readonly db: Database,
    private readonly enqueuer: Enqueuer,
    private readonly payloadLimitBytes: number,
  ) {}

  /**
   * Enqueues `jobs` (as enqueueMany takes them, without unique keys) as the
   * members of a new batch, all or nothing: the batch and its members are
   * written in one transaction, the caller's with `client` (then the batch
   * exists if and only if it commits). Bad input writes nothing.
   */
  async enqueue(jobs: readonly EnqueueSpec[], options: BatchOptions): Promise<BatchEnqueued> {
    const members = validateMembers(jobs);
    const batch = normalizeBatchOptions(
      options,
      (task) => this.enqueuer.resolveTask(task),
      this.payloadLimitBytes,
    );
    // One enqueue call: with telemetry on, one send span for the members.
    return this.enqueuer.sendMany(members, async (traceContext) => {
      const checked = await this.enqueuer.prepareMembers(members);
      const write = async (client: Executor): Promise<BatchEnqueued> => {
        const created = await this.db.run(
          batchQueries(this.db.schema).Create,
          { total: checked.length, ...batch },
          client,
        );
        const row = created.rows[0] as { id: string; created_at: Date; expires_at: Date | null };
        const enqueued = await this.enqueuer.insertMembers(checked, row.id, client, traceContext);
        return { id: row.id, jobs: enqueued, createdAt: row.created_at, expiresAt: row.expires_at };
      };
      return options.client ? write(options.client) : this.db.transaction(write);
    });
  }

  /** One batch, or null. */
  async get(id: string | number): Promise<BatchInfo | null> {
    const result = await this.db.run(batchQueries(this.db.schema).Get, {
      id: rowId(id, "BATCH_NOT_FOUND", "batch"),
    });
    const row = result.rows[0];
    return row ? toBatchInfo(row) : null;
  }

  /** Batches, newest first, by state. */
  async list(filter: ListBatchesFilter = {}): Promise<BatchSummary[]> {
    if (filter.state !== undefined && !STATES.includes(filter.state)) {
      throw new RotaError(
        "INVALID_OPTION",
        `Unknown batch state ${JSON.stringify(filter.state)}: use one of ${STATES.join(", ")}.`,
        { details: { field: "state", value: filter.state } },
      );
    }
    const result = await this.db.run(batchQueries(this.db.schema).List, {
      state: filter.state ?? null,
      limit: listLimit(filter.limit),
    });
    return result.rows.map(toBatchSummary);
  }
}

function toBatchSummary(row: BatchSummaryRow): BatchSummary {
  return {
    id: row.id,
    state: row.finished_at === null ? "open" : row.expired ? "expired" : "finished",
    total: row.total,
    succeeded: row.succeeded,
    failed: row.failed,
    cancelled: row.cancelled,
    pending: row.total - row.succeeded - row.failed - row.cancelled,
    callbackTask: row.callback_task,
    callbackQueue: row.callback_queue,
    callbackJobId: row.callback_job_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    finishedAt: row.finished_at,
  };
}

function toBatchInfo(row: BatchRow): BatchInfo {
  return {
    ...toBatchSummary(row),
    callbackPayload: row.callback_payload,
    openJobIds: row.open_job_ids ?? [],
  };
}
