import type pg from "pg";
import type { Database, Executor } from "../db/database.js";
import { enqueueQueries, type InsertRow } from "../db/queries/enqueue.js";
import { isConnectionLoss, isStatementError } from "../db/sqlstate.js";
import { RotaError } from "../errors.js";
import type { RotaEvents } from "../events.js";
import { type TaskDefinition, validatePayload } from "../task.js";
import type { Telemetry } from "../telemetry/telemetry.js";
import { canCopy, copyJobs, drawIds, type JobSource } from "./copy-jobs.js";
import {
  DEFAULT_QUEUE,
  ENQUEUE_OPTION_KEYS,
  type EnqueueOptions,
  type NormalizedJob,
  normalizeJob,
  rejectUnknownKeys,
  serializePayload,
  validateTaskName,
} from "./job-options.js";

/** What one job given to enqueueMany may hold. */
const SPEC_KEYS = ["task", "payload", "options"] as const;

/** The advice for an option written beside a job instead of in its options. */
function optionBesideJob(key: string): string | undefined {
  return (ENQUEUE_OPTION_KEYS as readonly string[]).includes(key)
    ? `put it in its options ({ task, payload, options: { ${key} } })`
    : undefined;
}

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
  /**
   * A pg client inside the caller's transaction, or an ORM's transaction
   * through its adapter (fromKysely, fromDrizzle, fromKnex, fromPrisma from
   * rota/kysely, rota/drizzle, rota/knex, rota/prisma): the job exists if
   * and only if that transaction commits.
   */
  client?: Executor;
}

interface Waiting {
  job: NormalizedJob;
  resolve: (result: EnqueueResult) => void;
  reject: (error: unknown) => void;
}

/** Most rows one grouped statement carries. */
const GROUP_LIMIT = 500;
/**
 * Grouped statements in flight at once. One: calls that arrive while a group
 * commits all go in the next group. With ten callers on the 2-core benchmark
 * machine, one group in flight reached 84-95% of the one-row-per-commit
 * ceiling, two about 75%, four about 60%, nine about 40%: more, smaller
 * statements cost the server more CPU than they win by overlapping, and
 * larger groups share one WAL flush anyway.
 */
const GROUPS_IN_FLIGHT = 1;
/**
 * Lists at least this long (without unique keys) go in by COPY
 * (copy-jobs.ts); shorter ones by one InsertPlain statement, which is one
 * round trip instead of three.
 */
const COPY_MIN_JOBS = 500;

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
    /** Null without telemetry: then an enqueue does nothing for it but check that. */
    private readonly telemetry: Telemetry | null = null,
  ) {
    this.q = enqueueQueries(db.schema);
  }

  async enqueue(
    task: EnqueueSpec["task"],
    payload: unknown,
    options: EnqueueOptions & TransactionOption = {},
  ): Promise<EnqueueResult> {
    if (this.telemetry !== null) return this.tracedEnqueue(this.telemetry, task, payload, options);
    const prepared = this.prepare({ task, payload, options });
    const job = prepared instanceof Promise ? await prepared : prepared;
    return this.submit(job, options.client);
  }

  /** enqueue() inside its send span: the span's trace context is stored on the job. */
  private tracedEnqueue(
    telemetry: Telemetry,
    task: EnqueueSpec["task"],
    payload: unknown,
    options: EnqueueOptions & TransactionOption,
  ): Promise<EnqueueResult> {
    return telemetry.send(
      this.destinations([{ task, options }]),
      false,
      async (traceContext) => {
        const prepared = this.prepare({ task, payload, options });
        const job = prepared instanceof Promise ? await prepared : prepared;
        job.traceContext = traceContext;
        return this.submit(job, options.client);
      },
      (result) => result.id,
    );
  }

  /** A checked job: inserted on the caller's client, or grouped with others on rota's pool (pump). */
  private submit(job: NormalizedJob, client: Executor | undefined): Promise<EnqueueResult> {
    if (client) return this.insert([job], client).then((results) => results[0] as EnqueueResult);
    return new Promise<EnqueueResult>((resolve, reject) => {
      this.waiting.push({ job, resolve, reject });
      this.pump();
    });
  }

  /**
   * Runs `write`, one enqueue call of `specs`' jobs, inside its send span when
   * telemetry is on: one span for all of them (enqueueMany, a batch's
   * members). `write` gets the trace context to store on each job, or null.
   */
  sendMany<T>(
    specs: readonly EnqueueSpec[],
    write: (traceContext: string | null) => Promise<T>,
  ): Promise<T> {
    if (this.telemetry === null) return write(null);
    return this.telemetry.send(this.destinations(specs), true, write);
  }

  /**
   * How many of the jobs go to each queue, for the send span and the sent
   * counter: read from the specs before they are checked, so a call refused
   * for bad input still has its span (with error.type).
   */
  private destinations(specs: readonly Partial<EnqueueSpec>[]): Map<string, number> {
    const counts = new Map<string, number>();
    for (const spec of specs) {
      const option = (spec?.options as EnqueueOptions | undefined)?.queue;
      const task = spec?.task;
      const definition =
        typeof task === "object" && task !== null
          ? task
          : typeof task === "string"
            ? this.tasks.get(task)
            : undefined;
      const queue = typeof option === "string" ? option : (definition?.queue ?? DEFAULT_QUEUE);
      counts.set(queue, (counts.get(queue) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * All or nothing: a short list (or one with unique keys) is checked whole,
   * then inserted by one statement; a long one goes by COPY (copy()), where a
   * job that fails its checks aborts the COPY. Either way a bad job means
   * nothing is written.
   */
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
    return this.sendMany(specs, (traceContext) => this.writeMany(specs, options, traceContext));
  }

  /** enqueueMany's write, each job with `traceContext` (null without telemetry). */
  private async writeMany(
    specs: readonly EnqueueSpec[],
    options: TransactionOption,
    traceContext: string | null,
  ): Promise<EnqueueResult[]> {
    if (specs.length >= COPY_MIN_JOBS && !specs.some(hasUniqueKey)) {
      if (!options.client) {
        const client = await this.db.connect();
        let broken: Error | undefined;
        try {
          return await this.copy(specs, client, { ownConnection: true, traceContext });
        } catch (error) {
          // A statement error or bad input leaves the connection usable; a
          // broken stream, a lost connection or a statement that timed out
          // (rota's QUERY_TIMEOUT, on a pool with a query timeout) may not,
          // so it is discarded.
          if (isConnectionLoss(error)) broken = error as Error;
          throw error;
        } finally {
          client.release(broken);
        }
      }
      if (canCopy(options.client)) return this.copy(specs, options.client, { traceContext });
    }
    const jobs = withTraceContext(await this.prepareAll(specs), traceContext);
    if (jobs.length === 0) return [];
    return this.insert(jobs, options.client ?? this.db.pool);
  }

  /** Every job checked, and no unique key twice (one statement cannot insert and conflict with itself). */
  private prepareAll(specs: readonly EnqueueSpec[]): NormalizedJob[] | Promise<NormalizedJob[]> {
    // Synchronous unless a task has a schema whose validation is async, so a
    // list of 20,000 jobs does not cost 20,000 promises.
    const prepared: (NormalizedJob | Promise<NormalizedJob>)[] = [];
    try {
      for (const spec of specs) prepared.push(this.prepare(spec));
    } catch (error) {
      // Async checks already begun are abandoned; their outcome must not
      // surface as an unhandled rejection.
      for (const p of prepared) if (p instanceof Promise) p.catch(() => {});
      throw error;
    }
    if (prepared.some((p) => p instanceof Promise)) {
      return Promise.all(prepared).then(keysOnce);
    }
    return keysOnce(prepared as NormalizedJob[]);
  }

  /**
   * A long list without unique keys: by COPY (copy-jobs.ts), on `client`. On
   * rota's own connection the jobs are checked chunk by chunk while the COPY
   * streams, and a bad one aborts it (nothing is written). On the caller's
   * client every job is checked first: an aborted COPY would also abort the
   * caller's transaction.
   */
  private async copy(
    specs: readonly EnqueueSpec[],
    client: pg.ClientBase,
    options: { ownConnection?: boolean; traceContext: string | null },
  ): Promise<EnqueueResult[]> {
    // The server draws the ids while the first jobs are checked here. A
    // failure is handled at once (and thrown below), so it is never an
    // unhandled rejection while a check is still pending.
    const drawing = drawIds(this.db, specs.length, client);
    drawing.catch(() => {});
    let source: JobSource;
    if (options.ownConnection) {
      source = {
        count: specs.length,
        prepare: (start, end) => this.prepareAll(specs.slice(start, end)),
      };
    } else {
      let all: NormalizedJob[];
      try {
        all = await this.prepareAll(specs);
      } catch (error) {
        // Bad input: nothing is written. The caller's client must be idle
        // again before the error reaches the caller.
        await drawing.catch(() => {});
        throw error;
      }
      source = checkedSource(all);
    }
    return this.copySource(source, drawing, client, {
      ownConnection: options.ownConnection === true,
      batchId: null,
      traceContext: options.traceContext,
    });
  }

  /** COPYs the jobs of `source` (copy-jobs.ts) and answers for each, announced as job:enqueued. */
  private async copySource(
    source: JobSource,
    drawing: ReturnType<typeof drawIds>,
    client: pg.ClientBase,
    options: { ownConnection: boolean; batchId: string | null; traceContext: string | null },
  ): Promise<EnqueueResult[]> {
    const emit = this.events.wants("job:enqueued");
    const { jobs, ids, states } = await copyJobs(this.db, source, drawing, client, {
      ...options,
      keepJobs: emit,
    });
    const results: EnqueueResult[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const outcome = {
        id: ids[i] as string,
        state: states[i] as string,
        inserted: true,
        replaced: false,
      };
      results[i] = outcome;
      if (jobs !== null) {
        const job = jobs[i] as NormalizedJob;
        this.events.emit("job:enqueued", { ...outcome, queue: job.queue, task: job.task });
      }
    }
    return results;
  }

  /**
   * The members of a batch (batches/batches.ts), checked whole as
   * enqueueMany checks its jobs. A member may not have a unique key: one
   * that met a queued job with its key would not be inserted, and the batch
   * would wait for a job that is not its member.
   */
  async prepareMembers(specs: readonly EnqueueSpec[]): Promise<NormalizedJob[]> {
    const jobs = await this.prepareAll(specs);
    const keyed = jobs.findIndex((job) => job.uniqueKey !== null);
    if (keyed !== -1) {
      throw new RotaError(
        "INVALID_OPTION",
        `Batch member ${keyed} has a unique key; a batch's members cannot have one (a member that met a queued job with its key would never be inserted): drop uniqueKey, or enqueue that job on its own.`,
        { details: { field: "uniqueKey", index: keyed } },
      );
    }
    return jobs;
  }

  /**
   * Inserts a batch's checked members with its id on `client`, inside the
   * transaction that created the batch: by COPY from COPY_MIN_JOBS jobs when
   * the client can, else one InsertPlain. Their wake-up names their queues
   * and is delivered at that transaction's commit.
   */
  async insertMembers(
    jobs: NormalizedJob[],
    batchId: string,
    client: Executor,
    traceContext: string | null,
  ): Promise<EnqueueResult[]> {
    if (jobs.length >= COPY_MIN_JOBS && canCopy(client)) {
      const drawing = drawIds(this.db, jobs.length, client);
      // Its failure is thrown where copyJobs awaits it, never left unhandled.
      drawing.catch(() => {});
      return this.copySource(checkedSource(jobs), drawing, client, {
        ownConnection: false,
        batchId,
        traceContext,
      });
    }
    const result = await this.db.run(
      this.q.InsertPlain,
      {
        jobs: jobsJson(withTraceContext(jobs, traceContext), false),
        notify: true,
        commitsAlone: false,
        batchId,
      },
      client,
    );
    return result.rows.map((row, i) => this.outcome(jobs[i] as NormalizedJob, row));
  }

  /**
   * Checks one job. Synchronous unless its task has a schema, whose Standard
   * Schema validation may be async.
   */
  private prepare(spec: EnqueueSpec): NormalizedJob | Promise<NormalizedJob> {
    const definition = this.resolveTask(spec.task);
    // The payload stored is what the caller gave; it is validated again, and
    // transformed by the schema, just before the handler runs.
    if (definition?.schema) {
      return validatePayload(definition, spec.payload).then(() => this.normalize(definition, spec));
    }
    return this.normalize(definition, spec);
  }

  private normalize(definition: TaskDefinition | null, spec: EnqueueSpec): NormalizedJob {
    rejectUnknownKeys(spec, SPEC_KEYS, "A job to enqueue", optionBesideJob);
    const name = definition?.name ?? (spec.task as string);
    const json = serializePayload(name, spec.payload, this.payloadLimitBytes);
    return normalizeJob(name, json, spec.options ?? {}, definition ?? {}, spec.payload);
  }

  /**
   * The registered definition of `task` (null for a name when none is
   * registered); an unknown name, when tasks are registered, is refused
   * with the closest one.
   */
  resolveTask(task: EnqueueSpec["task"]): TaskDefinition | null {
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
    if (jobs.every((j) => j.uniqueKey === null)) {
      await this.runPlainGroup(group, jobs);
      return;
    }
    let rows: InsertRow[];
    try {
      rows = await this.insertStatement(jobs, this.db.pool);
    } catch (error) {
      await this.splitGroup(group, error);
      return;
    }
    await Promise.all(
      group.map((w, i) =>
        this.resolveRow(w.job, rows[i] as InsertRow, this.db.pool).then(w.resolve, w.reject),
      ),
    );
  }

  /**
   * A group without unique keys. A lone call with nothing else waiting wakes
   * the workers from its own statement: one round trip per job. Under load,
   * InsertPlain commits without the NOTIFY, the callers are answered, then
   * Wake follows on the same connection: keeping the NOTIFY out of the
   * insert's transaction lets concurrent groups share WAL flushes (see
   * enqueue.sql). Wake is sent before the connection goes back to the pool,
   * so close() (which waits for checked-out connections) cannot drop it; if
   * it fails anyway the jobs are committed and workers find them by polling.
   */
  private async runPlainGroup(group: Waiting[], jobs: NormalizedJob[]): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.db.connect();
    } catch (error) {
      for (const w of group) w.reject(error);
      return;
    }
    const alone = group.length === 1 && this.waiting.length === 0;
    let rows: InsertRow[];
    try {
      rows = (
        await this.db.run(
          this.q.InsertPlain,
          { jobs: jobsJson(jobs, false), notify: alone, commitsAlone: alone, batchId: null },
          client,
        )
      ).rows;
    } catch (error) {
      client.release(isStatementError(error) ? undefined : (error as Error));
      await this.splitGroup(group, error);
      return;
    }
    const woken = new Set<string>();
    for (const [i, w] of group.entries()) {
      const row = rows[i] as InsertRow;
      woken.add(w.job.queue);
      w.resolve(this.outcome(w.job, row));
    }
    let broken: Error | undefined;
    if (woken.size > 0 && !alone) {
      await this.db
        .run(this.q.Wake, { queues: [...woken], dueInMs: null }, client)
        .catch((error: unknown) => {
          if (!isStatementError(error)) broken = error as Error;
        });
    }
    client.release(broken);
  }

  /**
   * After a grouped statement failed. Only a statement the server refused (it
   * has a SQLSTATE, so nothing was written) is split up and retried row by
   * row. A lost connection may have committed: retrying could duplicate jobs,
   * so those calls get the error.
   */
  private async splitGroup(group: Waiting[], error: unknown): Promise<void> {
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
  }

  private async insert(jobs: NormalizedJob[], executor: Executor): Promise<EnqueueResult[]> {
    const rows = await this.insertStatement(jobs, executor);
    const results: EnqueueResult[] = new Array(rows.length);
    for (const [index, row] of rows.entries()) {
      const job = jobs[index] as NormalizedJob;
      // Only a 'keep' conflict the statement could not see needs another
      // round trip; every other row is answered without awaiting.
      results[index] =
        row.id === null && job.uniqueKey !== null
          ? await this.resolveRow(job, row, executor)
          : this.outcome(job, row);
    }
    return results;
  }

  private async insertStatement(jobs: NormalizedJob[], executor: Executor): Promise<InsertRow[]> {
    const withKeys = jobs.some((j) => j.uniqueKey !== null);
    const json = jobsJson(jobs, withKeys);
    // On rota's pool each statement commits by itself: its wake-up can say
    // when delayed jobs come due (see enqueue.sql).
    const commitsAlone = executor === this.db.pool;
    const result = withKeys
      ? await this.db.run(this.q.Insert, { jobs: json, commitsAlone }, executor)
      : await this.db.run(
          this.q.InsertPlain,
          { jobs: json, notify: true, commitsAlone, batchId: null },
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
      const again = await this.db.run(
        this.q.QueuedByUniqueKey,
        { uniqueKey: job.uniqueKey },
        executor,
      );
      id = again.rows[0]?.id ?? null;
      state = again.rows[0]?.state ?? null;
      // It started meanwhile, so the key is free: insert afresh.
      if (id === null) return (await this.insert([job], executor))[0] as EnqueueResult;
    }
    return this.outcome(job, { ...row, id, state });
  }

  /** The caller's answer for a row the statement returned, announced as job:enqueued. */
  private outcome(job: NormalizedJob, row: InsertRow): EnqueueResult {
    const outcome = {
      id: row.id as string,
      state: row.state as string,
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
    if (j.concurrencyKey !== null) {
      fields.push(`"concurrency_key":${JSON.stringify(j.concurrencyKey)}`);
      fields.push(`"concurrency_limit":${j.concurrencyLimit}`);
    }
    if (withKeys) {
      if (j.uniqueKey !== null) fields.push(`"unique_key":${JSON.stringify(j.uniqueKey)}`);
      fields.push(`"conflict":${JSON.stringify(j.conflict)}`);
    }
    // JSON text rota wrote itself (trace-context.ts).
    if (j.traceContext !== null) fields.push(`"trace_context":${j.traceContext}`);
    return `{${fields.join(",")}}`;
  });
  return `[${parts.join(",")}]`;
}

/** The jobs of one enqueue call, each with its send span's trace context (none when null). */
function withTraceContext(jobs: NormalizedJob[], traceContext: string | null): NormalizedJob[] {
  if (traceContext !== null) for (const job of jobs) job.traceContext = traceContext;
  return jobs;
}

/** Jobs already checked, as the source of a COPY. */
function checkedSource(jobs: NormalizedJob[]): JobSource {
  return { count: jobs.length, prepare: (start, end) => jobs.slice(start, end) };
}

/** The jobs, once no unique key is in them twice (one statement cannot insert and conflict with itself). */
function keysOnce(jobs: NormalizedJob[]): NormalizedJob[] {
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
  return jobs;
}

function hasUniqueKey(spec: EnqueueSpec): boolean {
  const options = spec?.options as EnqueueOptions | undefined;
  return typeof options === "object" && options !== null && options.uniqueKey !== undefined;
}
