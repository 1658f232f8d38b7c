import pg from "pg";
import type { Database, Executor } from "../db/database.js";
import { RotaError } from "../errors.js";
import type { RotaEvents } from "../events.js";
import { type TaskDefinition, validatePayload } from "../task.js";
import {
  type EnqueueOptions,
  type NormalizedJob,
  normalizeJob,
  serializePayload,
  validateTaskName,
} from "./job-options.js";
import { enqueueQueries } from "./job-queries.js";

export interface EnqueueResult {
  id: string;
  /** 'available' (due now) or 'scheduled' (waits for its run time). */
  state: string;
  /** False when a queued job with the same unique key was kept or replaced instead. */
  inserted: boolean;
  /** True when onConflict "replace" overwrote a queued job. */
  replaced: boolean;
}

export interface EnqueueSpec<Payload = unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: any task definition's input type
  task: string | TaskDefinition<Payload, any>;
  payload?: Payload;
  options?: EnqueueOptions;
}

/** Run the statement on this client (inside the caller's transaction). */
export interface TransactionOption {
  client?: Executor;
}

interface InsertRow {
  id: string | null;
  state: string | null;
  inserted: boolean;
  replaced: boolean;
}

interface Waiting {
  job: NormalizedJob;
  resolve: (result: EnqueueResult) => void;
  reject: (error: unknown) => void;
}

/** Most rows one grouped statement carries. */
const GROUP_LIMIT = 500;
/** Grouped statements in flight at once (pipelining over pool connections). */
const GROUPS_IN_FLIGHT = 2;

/**
 * Enqueue: validation in the process (nothing is written for bad input), then
 * one INSERT statement for any number of jobs.
 *
 * Single enqueues on rota's own pool are grouped: calls that arrive while a
 * statement is in flight go together in the next one. Each caller's promise
 * settles only after the statement holding its row has committed, and when a
 * grouped statement fails its rows are retried one by one, so one bad row
 * fails only its own call.
 */
export class Enqueuer {
  private readonly q;
  private waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly db: Database,
    private readonly events: RotaEvents,
    private readonly tasks: Map<string, TaskDefinition>,
    private readonly payloadLimitBytes: number,
  ) {
    this.q = enqueueQueries(db.schema);
  }

  async enqueue(
    task: EnqueueSpec["task"],
    payload: unknown,
    options: EnqueueOptions & TransactionOption = {},
  ): Promise<EnqueueResult> {
    const job = await this.prepare({ task, payload, options });
    if (options.client) {
      const [result] = await this.insert([job], options.client);
      return result as EnqueueResult;
    }
    return new Promise<EnqueueResult>((resolve, reject) => {
      this.waiting.push({ job, resolve, reject });
      this.pump();
    });
  }

  /** All or nothing: every job is validated first, then one statement inserts them all. */
  async enqueueMany(
    specs: readonly EnqueueSpec[],
    options: TransactionOption = {},
  ): Promise<EnqueueResult[]> {
    if (!Array.isArray(specs)) {
      throw new RotaError(
        "INVALID_OPTION",
        "enqueueMany takes an array of { task, payload, options }.",
        {
          details: { field: "jobs" },
        },
      );
    }
    const jobs = await Promise.all(specs.map((spec) => this.prepare(spec)));
    const keys = new Set<string>();
    for (const job of jobs) {
      if (job.uniqueKey === null) continue;
      if (keys.has(job.uniqueKey)) {
        throw new RotaError(
          "INVALID_OPTION",
          `enqueueMany got unique key "${job.uniqueKey}" more than once; give each key once per call.`,
          { details: { field: "uniqueKey", value: job.uniqueKey } },
        );
      }
      keys.add(job.uniqueKey);
    }
    if (jobs.length === 0) return [];
    return this.insert(jobs, options.client ?? this.db.pool);
  }

  private async prepare(spec: EnqueueSpec): Promise<NormalizedJob> {
    const definition = this.resolveTask(spec.task);
    // The payload stored is what the caller gave; it is validated again, and
    // transformed by the schema, just before the handler runs.
    if (definition) await validatePayload(definition, spec.payload);
    const name = definition?.name ?? (spec.task as string);
    const json = serializePayload(name, spec.payload, this.payloadLimitBytes);
    return normalizeJob(name, json, spec.options ?? {}, definition ?? {});
  }

  private resolveTask(task: EnqueueSpec["task"]): TaskDefinition | null {
    if (typeof task === "object" && task !== null) {
      validateTaskName(task.name);
      return task as TaskDefinition;
    }
    const name = validateTaskName(task);
    const registered = this.tasks.get(name);
    if (!registered && this.tasks.size > 0) {
      const known = [...this.tasks.keys()];
      const close = known.find((k) => k.toLowerCase() === name.toLowerCase());
      throw new RotaError(
        "UNKNOWN_TASK",
        `Unknown task "${name}"${close ? ` (did you mean "${close}"?)` : ""}: registered tasks are ${known.map((k) => `"${k}"`).join(", ")}.`,
        { details: { task: name, known } },
      );
    }
    return registered ?? null;
  }

  private pump(): void {
    while (this.inFlight < GROUPS_IN_FLIGHT && this.waiting.length > 0) {
      const group = this.takeGroup();
      this.inFlight++;
      this.runGroup(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** Up to GROUP_LIMIT waiting calls, never two with the same unique key. */
  private takeGroup(): Waiting[] {
    const group: Waiting[] = [];
    const rest: Waiting[] = [];
    const keys = new Set<string>();
    for (const waiting of this.waiting) {
      const key = waiting.job.uniqueKey;
      if (group.length >= GROUP_LIMIT || (key !== null && keys.has(key))) {
        rest.push(waiting);
        continue;
      }
      if (key !== null) keys.add(key);
      group.push(waiting);
    }
    this.waiting = rest;
    return group;
  }

  private async runGroup(group: Waiting[]): Promise<void> {
    const jobs = group.map((w) => w.job);
    let rows: InsertRow[];
    try {
      rows = await this.insertStatement(jobs, this.db.pool);
    } catch (error) {
      // Only a statement the server refused (it has a SQLSTATE, so nothing was
      // written) is split up. A lost connection may have committed: retrying
      // could duplicate jobs, so those calls get the error.
      if (group.length === 1 || !isStatementError(error)) {
        for (const w of group) w.reject(error);
        return;
      }
      await Promise.all(
        group.map((w) =>
          this.insert([w.job], this.db.pool).then(
            (results) => w.resolve(results[0] as EnqueueResult),
            (rowError: unknown) => w.reject(rowError),
          ),
        ),
      );
      return;
    }
    await Promise.all(
      group.map((w, i) =>
        this.resolveRow(w.job, rows[i] as InsertRow, this.db.pool).then(w.resolve, w.reject),
      ),
    );
  }

  private async insert(jobs: NormalizedJob[], executor: Executor): Promise<EnqueueResult[]> {
    const rows = await this.insertStatement(jobs, executor);
    const results: EnqueueResult[] = [];
    for (const [index, row] of rows.entries()) {
      results.push(await this.resolveRow(jobs[index] as NormalizedJob, row, executor));
    }
    return results;
  }

  private async insertStatement(jobs: NormalizedJob[], executor: Executor): Promise<InsertRow[]> {
    const withKeys = jobs.some((j) => j.uniqueKey !== null);
    const result = await this.db.run<InsertRow>(
      withKeys ? this.q.Insert : this.q.InsertPlain,
      [jobsJson(jobs, withKeys)],
      executor,
    );
    return result.rows;
  }

  private async resolveRow(
    job: NormalizedJob,
    row: InsertRow,
    executor: Executor,
  ): Promise<EnqueueResult> {
    let { id, state } = row;
    if (id === null && job.uniqueKey !== null) {
      // The conflicting job was committed by another transaction during our
      // insert, so this statement's snapshot could not see it: look again.
      const again = await this.db.run<{ id: string; state: string }>(
        this.q.QueuedByUniqueKey,
        [job.uniqueKey],
        executor,
      );
      id = again.rows[0]?.id ?? null;
      state = again.rows[0]?.state ?? null;
      // It started meanwhile, so the key is free: insert afresh.
      if (id === null) return (await this.insert([job], executor))[0] as EnqueueResult;
    }
    const outcome = {
      id: id as string,
      state: state as string,
      inserted: row.inserted,
      replaced: row.replaced,
    };
    if (this.events.wants("job:enqueued")) {
      this.events.emit("job:enqueued", { ...outcome, queue: job.queue, task: job.task });
    }
    return outcome;
  }
}

/**
 * The jobs as one JSON array for the insert statements. Payloads are already
 * JSON text (validated), so they are spliced in, not serialized twice.
 */
function jobsJson(jobs: NormalizedJob[], withKeys: boolean): string {
  const parts = jobs.map((j) => {
    const fields = [
      `"queue":${JSON.stringify(j.queue)}`,
      `"task":${JSON.stringify(j.task)}`,
      `"payload":${j.payload}`,
      `"priority":${j.priority}`,
      `"max_attempts":${j.maxAttempts}`,
    ];
    if (j.delayMs !== null) fields.push(`"delay_ms":${j.delayMs}`);
    if (j.runAt !== null) fields.push(`"run_at":${JSON.stringify(j.runAt.toISOString())}`);
    if (j.backoff !== null) fields.push(`"backoff":${j.backoff}`);
    if (j.timeoutMs !== null) fields.push(`"timeout_ms":${j.timeoutMs}`);
    if (withKeys) {
      if (j.uniqueKey !== null) fields.push(`"unique_key":${JSON.stringify(j.uniqueKey)}`);
      fields.push(`"conflict":${JSON.stringify(j.conflict)}`);
    }
    return `{${fields.join(",")}}`;
  });
  return `[${parts.join(",")}]`;
}

/** An error the server reported for the statement (so the statement wrote nothing). */
function isStatementError(error: unknown): boolean {
  return error instanceof pg.DatabaseError;
}
