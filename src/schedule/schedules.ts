import type { PoolClient } from "pg";
import type { Database, Executor } from "../db/database.js";
import {
  type LockedScheduleRow,
  type Owner,
  type ScheduleRow,
  scheduleQueries,
} from "../db/queries/schedules.js";
import { targetQueries } from "../db/queries/targets.js";
import type { RowOf } from "../db/sql.js";
import { isRotaError, RotaError } from "../errors.js";
import { type RotaEvents, transactionWithEvents } from "../events.js";
import { type TaskDefinition, validatePayload } from "../task.js";
import { type CadencePlan, cadencePlan } from "./cadence-plan.js";
import { TARGET_SOURCE_TIMEOUT_MS } from "./fan-out.js";
import { graphileWorkerImport } from "./import-graphile-worker.js";
import { DEFAULT_PG_BOSS_SCHEMA, pgBossImport, readPgBossSchedules } from "./import-pg-boss.js";
import { materializeOne, supersedeExecutions } from "./materializer.js";
import type { ImportOptions, ImportPlan, ImportResult } from "./schedule-import.js";
import {
  type NormalizedSchedule,
  normalizeSchedule,
  type ScheduleInput,
  validateScheduleName,
} from "./schedule-options.js";
import { effectiveWindow, type Schedule, toSchedule } from "./schedule-record.js";
import {
  DEFAULT_TARGET,
  executionHistory,
  notFound,
  type ScheduleExecution,
  type UpcomingRun,
  upcomingRuns,
  validateLimit,
} from "./schedule-timeline.js";
import { ScheduleTargets, targetNotFound, validateKey } from "./targets.js";

export type { CadencePlan } from "./cadence-plan.js";
export type { Schedule } from "./schedule-record.js";
export type { ScheduleExecution, UpcomingRun } from "./schedule-timeline.js";

export interface UpsertResult {
  schedule: Schedule;
  /** "created", "changed" (executions re-planned) or "unchanged". */
  outcome: "created" | "changed" | "unchanged";
  /** Planned executions superseded by the change. */
  superseded: number;
  /** Executions materialized by the call. */
  materialized: number;
}

/** Carries a dry run's results out of the transaction it rolls back. */
class DryRun<T> {
  value: T | undefined;
}

export interface HandoverChange {
  name: string;
  from: Owner;
  to: Owner;
}

/**
 * Schedules: create, change, pause, skip, trigger, and look ahead and back.
 * Each change runs in one transaction with its effect on the planned
 * executions (guarantee 6: no orphans): a change supersedes the stale ones
 * and materializes new ones before it commits.
 */
export class Schedules {
  private readonly q;
  /** The keys each schedule fans out to (add, remove, list, count). */
  readonly targets: ScheduleTargets;

  constructor(
    private readonly db: Database,
    private readonly events: RotaEvents,
    private readonly tasks: Map<string, TaskDefinition>,
    private readonly payloadLimitBytes: number,
  ) {
    this.q = scheduleQueries(db.schema);
    this.targets = new ScheduleTargets(
      db,
      events,
      {
        require: (client, name) => this.require(client, name),
        read: async (client, name) => {
          const row = (
            await this.db.run(this.q.Get, { name: validateScheduleName(name), id: null }, client)
          ).rows[0];
          if (!row) throw notFound(name);
          return row;
        },
        resetCursor: (client, id) => this.setState(client, id, { resetCursor: true }),
        lockById: async (client, id) => (await this.lock(client, null, id)) as LockedScheduleRow,
      },
      payloadLimitBytes,
    );
  }

  /** A transaction of its own, whose events are heard once it commits (none if it rolls back). */
  private transaction<T>(work: (client: PoolClient, events: RotaEvents) => Promise<T>): Promise<T> {
    return transactionWithEvents(this.db, this.events, work);
  }

  /** Creates or changes a schedule by name; calling it again with the same input changes nothing. */
  async upsert(input: ScheduleInput): Promise<UpsertResult> {
    const schedule = await this.prepare(input);
    return this.transaction((client, events) => this.upsertOn(client, schedule, events));
  }

  /**
   * Upserts many schedules in one transaction: every input is checked
   * first, and either all are written or none (`rota schedules import`).
   * `onProgress` is called after each. With `dryRun`, the transaction is
   * rolled back: the outcomes are what the call would do, nothing is kept,
   * and no event is emitted.
   */
  async upsertMany(
    inputs: readonly ScheduleInput[],
    onProgress?: (done: number, total: number) => void,
    options: { dryRun?: boolean } = {},
  ): Promise<UpsertResult[]> {
    const schedules: NormalizedSchedule[] = [];
    const names = new Set<string>();
    for (const input of inputs) {
      const schedule = await this.prepare(input);
      if (names.has(schedule.name)) {
        throw new RotaError(
          "INVALID_OPTION",
          `Schedule "${schedule.name}" is given more than once; give each name once per call.`,
          { details: { name: schedule.name } },
        );
      }
      names.add(schedule.name);
      schedules.push(schedule);
    }
    const write = async (client: Executor, events: RotaEvents) => {
      const results: UpsertResult[] = [];
      for (const schedule of schedules) {
        results.push(await this.upsertOn(client, schedule, events));
        onProgress?.(results.length, schedules.length);
      }
      return results;
    };
    if (!options.dryRun) return this.transaction(write);
    // Rolled back: its listeners hear of none of the executions it planned.
    const rolledBack = new DryRun<UpsertResult[]>();
    try {
      await this.transaction(async (client, events) => {
        rolledBack.value = await write(client, events);
        throw rolledBack;
      });
    } catch (error) {
      if (error !== rolledBack) throw error;
    }
    return rolledBack.value ?? [];
  }

  /**
   * Writes what an importer mapped from another scheduler, as external
   * schedules, in one transaction: any entry the importer or rota's checks
   * refuse fails the whole import, naming each such entry, and writes
   * nothing. Importing the same schedules again changes nothing.
   */
  async importEntries(plan: ImportPlan, options: ImportOptions = {}): Promise<ImportResult> {
    const problems = [...plan.problems];
    for (const entry of plan.entries) {
      try {
        await this.prepare(entry.input);
      } catch (error) {
        if (!isRotaError(error)) throw error;
        problems.push(`${entry.source}: ${error.message} [${error.code}]`);
      }
    }
    if (problems.length > 0) throw plan.invalid(problems);
    const written = await this.upsertMany(
      plan.entries.map((e) => e.input),
      options.onProgress,
      { dryRun: options.dryRun },
    );
    return {
      dryRun: options.dryRun === true,
      owner: "external",
      imported: plan.entries.map((entry, i) => ({
        name: entry.input.name,
        source: entry.source,
        task: entry.input.task,
        cron: entry.input.cron,
        timezone: entry.input.timezone ?? "UTC",
        outcome: written[i]?.outcome ?? "unchanged",
        unmapped: entry.unmapped,
      })),
    };
  }

  /**
   * Imports pg-boss's schedules from its tables (`<schema>.schedule`, schema
   * "pgboss" by default) in this database, as external schedules: each runs
   * the task named as pg-boss's queue. See docs/coming-from.md.
   */
  async importFromPgBoss(
    options: ImportOptions & { schema?: string; prefix?: string } = {},
  ): Promise<ImportResult> {
    const rows = await readPgBossSchedules(this.db, options.schema ?? DEFAULT_PG_BOSS_SCHEMA);
    return this.importEntries(pgBossImport(rows, { prefix: options.prefix }), options);
  }

  /**
   * Imports a graphile-worker crontab (its text), as external schedules: each
   * line's task, options and payload as graphile-worker reads them. See
   * docs/coming-from.md.
   */
  importGraphileWorkerCrontab(
    text: string,
    options: ImportOptions & { prefix?: string } = {},
  ): Promise<ImportResult> {
    return this.importEntries(graphileWorkerImport(text, { prefix: options.prefix }), options);
  }

  private async prepare(input: ScheduleInput): Promise<NormalizedSchedule> {
    const schedule = normalizeSchedule(input, this.tasks, this.payloadLimitBytes);
    const definition =
      typeof input.task === "object" ? input.task : (this.tasks.get(schedule.task) ?? null);
    if (definition) await validatePayload(definition, input.payload);
    return schedule;
  }

  private async upsertOn(
    client: Executor,
    schedule: NormalizedSchedule,
    events: RotaEvents,
  ): Promise<UpsertResult> {
    if (schedule.targetSource !== null) await this.checkSource(client, schedule);
    const before = await this.lock(client, schedule.name);
    const written = await this.db.run(this.q.Upsert, schedule, client);
    const { id, version, owner, inserted } = written.rows[0] as RowOf<typeof this.q.Upsert>;
    const changed = inserted || before?.version !== version || before?.owner !== owner;
    // A source taken away takes the targets it added with it.
    if (before?.target_source && schedule.targetSource === null) {
      await this.db.run(
        targetQueries(this.db.schema).RemoveSourceTargets,
        { scheduleId: id, unseenOnly: false },
        client,
      );
    }
    let superseded = 0;
    if (changed) {
      if (!inserted) {
        superseded = await supersedeExecutions(
          this.db,
          events,
          client,
          id,
          owner === "rota" ? version : null,
          "the schedule changed",
        );
      }
      await this.setState(client, id, { resetCursor: true });
    }
    // A change re-plans from the row as it now stands (cursor reset); for a
    // fanned-out schedule, the cadence in progress too.
    const materialized = changed
      ? (
          await materializeOne(
            this.db,
            events,
            client,
            (await this.lock(client, null, id)) as LockedScheduleRow,
            { openCadence: !inserted },
          )
        ).executions
      : 0;
    return {
      schedule: await this.current(client, id),
      outcome: inserted ? "created" : changed ? "changed" : "unchanged",
      superseded,
      materialized,
    };
  }

  async get(name: string): Promise<Schedule | null> {
    const result = await this.db.run(this.q.Get, { name: validateScheduleName(name), id: null });
    const row = result.rows[0];
    return row ? toSchedule(row) : null;
  }

  /** Schedules by name, each with its next planned run. */
  async list(
    filter: { owner?: Owner; namePrefix?: string; limit?: number } = {},
  ): Promise<
    Pick<
      Schedule,
      | "id"
      | "name"
      | "task"
      | "queue"
      | "cron"
      | "every"
      | "timezone"
      | "enabled"
      | "paused"
      | "owner"
      | "lastError"
      | "horizon"
      | "horizonMs"
      | "nextPlannedAt"
      | "lastRunAt"
      | "cursorAt"
      | "lastPlannedAt"
      | "fanOut"
      | "windowMs"
      | "effectiveWindowMs"
      | "distribution"
      | "batchSize"
      | "batchEveryMs"
    >[]
  > {
    const like =
      filter.namePrefix === undefined ? null : `${filter.namePrefix.replace(/[\\%_]/g, "\\$&")}%`;
    const result = await this.db.run(this.q.List, {
      owner: filter.owner ?? null,
      namePattern: like,
      limit: validateLimit(filter.limit ?? 1_000),
    });
    return result.rows.map((r) => ({
      id: r.id,
      name: r.name,
      task: r.task,
      queue: r.queue,
      cron: r.cron,
      every: r.every,
      timezone: r.timezone,
      enabled: r.enabled,
      paused: r.paused,
      owner: r.owner,
      lastError: r.last_error,
      horizon: r.horizon,
      horizonMs: r.horizon_ms,
      nextPlannedAt: r.next_planned_at,
      lastRunAt: r.last_run_at,
      cursorAt: r.cursor_at,
      lastPlannedAt: r.last_planned_at,
      fanOut: r.fan_out,
      windowMs: r.window_ms,
      effectiveWindowMs: effectiveWindow(r),
      distribution: r.distribution,
      batchSize: r.batch_size,
      batchEveryMs: r.batch_every_ms,
    }));
  }

  /** Deletes a schedule and its executions that have not started (running ones finish). */
  async remove(name: string): Promise<{ removedExecutions: number }> {
    return this.db.transaction(async (client) => {
      const row = await this.require(client, name);
      const removed = await this.db.run(this.q.RemoveUnstarted, { scheduleId: row.id }, client);
      await this.db.run(this.q.Delete, { id: row.id }, client);
      return { removedExecutions: removed.rowCount ?? 0 };
    });
  }

  /** Stops firing: planned executions are superseded. Resume re-plans from the next occurrence. */
  pause(name: string): Promise<Schedule> {
    return this.changeState(name, { paused: true }, "the schedule was paused");
  }

  /** Resumes from the next occurrence after now: occurrences during the pause do not fire. */
  resume(name: string): Promise<Schedule> {
    return this.changeState(name, { paused: false });
  }

  disable(name: string): Promise<Schedule> {
    return this.changeState(name, { enabled: false }, "the schedule was disabled");
  }

  /** Enables a schedule (also one rota disabled for a bad spec, once the spec is fixed). */
  enable(name: string): Promise<Schedule> {
    return this.changeState(name, { enabled: true });
  }

  /**
   * One extra execution now; the grid and its planned executions are left
   * alone. A schedule with targets runs it for one of them (`target`).
   */
  async trigger(
    name: string,
    options: { target?: string } = {},
  ): Promise<{ executionId: string; runAt: Date; targetKey: string }> {
    return this.transaction(async (client, events) => {
      const row = await this.require(client, name);
      const target = await this.targetOf(client, row, options.target, "trigger");
      const result = await this.db.run(this.q.Trigger, { scheduleId: row.id, target }, client);
      const inserted = result.rows[0] as RowOf<typeof this.q.Trigger>;
      events.emit("schedule:execution:materialized", {
        scheduleId: row.id,
        executionId: inserted.id,
        occurrenceAt: null,
        runAt: inserted.run_at,
        state: "available",
      });
      return { executionId: inserted.id, runAt: inserted.run_at, targetKey: target };
    });
  }

  /**
   * The target an operator's skip or trigger names: a schedule of its own
   * grid has only "", a fanned-out one needs one of its enabled targets
   * (optional for skip, which then takes the next run of any).
   */
  private async targetOf(
    client: Executor,
    row: LockedScheduleRow,
    given: string | undefined,
    verb: "trigger" | "skip",
  ): Promise<string> {
    if (!row.fan_out) {
      if (given !== undefined && given !== DEFAULT_TARGET) {
        throw new RotaError(
          "INVALID_OPTION",
          `Schedule "${row.name}" has no targets, only its own grid: ${verb} it without a target.`,
          { details: { field: "target", value: given } },
        );
      }
      return DEFAULT_TARGET;
    }
    if (given === undefined) {
      if (verb === "skip") return "";
      throw new RotaError(
        "INVALID_OPTION",
        `Schedule "${row.name}" runs for its targets: name the one to ${verb} ({ target: KEY }, --target KEY).`,
        { details: { field: "target" } },
      );
    }
    const key = validateKey(row.name, given);
    const found = await this.db.run(
      targetQueries(this.db.schema).Rank,
      { scheduleId: row.id, key, byHash: false, salt: "" },
      client,
    );
    if (!found.rows[0]?.present) throw targetNotFound(row.name, key);
    return key;
  }

  /**
   * Skips the next planned execution (or the one with `executionId`): it is
   * recorded as 'skipped' and never runs; the schedule goes on at the
   * following occurrence, and the horizon is refilled in the same transaction.
   */
  async skip(
    name: string,
    options: { executionId?: string; target?: string } = {},
  ): Promise<ScheduleExecution> {
    const executionId = options.executionId;
    if (executionId !== undefined && !/^[1-9]\d{0,18}$/.test(String(executionId))) {
      throw new RotaError(
        "INVALID_OPTION",
        `executionId must be a job id (a positive whole number), got ${JSON.stringify(executionId)}.`,
        { details: { field: "executionId", value: executionId } },
      );
    }
    return this.transaction(async (client, events) => {
      const row = await this.require(client, name);
      const target = await this.targetOf(client, row, options.target, "skip");
      const skipped = await this.db.run(
        this.q.Skip,
        {
          scheduleId: row.id,
          executionId: options.executionId ?? null,
          target: row.fan_out && target === "" ? null : target,
        },
        client,
      );
      const hit = skipped.rows[0];
      if (!hit) {
        throw new RotaError(
          "EXECUTION_NOT_FOUND",
          options.executionId
            ? `Schedule "${name}" has no planned execution ${options.executionId} that has not started.`
            : `Schedule "${name}" has no planned execution to skip (it is paused, disabled, external, or not materialized yet).`,
          { details: { name, executionId: options.executionId ?? null } },
        );
      }
      events.emit("schedule:execution:skipped", {
        scheduleId: row.id,
        executionId: hit.id,
        occurrenceAt: hit.occurrence_at,
        reason: "operator",
      });
      await materializeOne(this.db, events, client, row);
      return {
        id: hit.id,
        state: "skipped",
        runAt: hit.run_at,
        occurrenceAt: hit.occurrence_at,
        targetKey: hit.target_key,
        version: row.version,
        attempts: 0,
        startedAt: null,
        finishedAt: null,
        lastError: null,
      };
    });
  }

  /**
   * The next `limit` planned runs from `from` (default now): the materialized
   * executions, then times computed from the cursor (they need no rows). Empty
   * while the schedule is paused, disabled or owned by another scheduler.
   */
  upcoming(
    name: string,
    options: { limit?: number; from?: Date; target?: string } = {},
  ): Promise<UpcomingRun[]> {
    return upcomingRuns(this.db, name, options);
  }

  /**
   * How one cadence (the next occurrence, or `occurrence`) falls across its
   * window, per minute: from its executions once written, else computed by
   * the orchestrator's placement over the current targets.
   */
  plan(name: string, options: { occurrence?: Date } = {}): Promise<CadencePlan> {
    return cadencePlan(this.db, name, options);
  }

  /** A schedule's executions, newest first, including those that did not run. */
  history(
    name: string,
    options: { limit?: number; states?: string[] } = {},
  ): Promise<ScheduleExecution[]> {
    return executionHistory(this.db, name, options);
  }

  /**
   * Moves schedules that came from another scheduler (created with owner
   * "external") between owners. With `names`, those are handed to rota. With
   * `percent`, each such schedule's stable bucket (0-99, from its name) decides:
   * below `percent` rota owns it, otherwise the other scheduler does — so a
   * migration ramps up by raising the percent and rolls back by lowering it.
   * A schedule handed to rota starts from a baseline (no burst); one handed
   * back has its planned executions superseded. Each schedule is its own
   * transaction; `onProgress` is called after each.
   */
  async handover(
    options: { percent?: number; names?: string[]; to?: Owner },
    onProgress?: (done: number, total: number) => void,
  ): Promise<HandoverChange[]> {
    const percent = options.percent;
    if (
      percent !== undefined &&
      (typeof percent !== "number" || !(percent >= 0 && percent <= 100))
    ) {
      throw new RotaError(
        "INVALID_OPTION",
        `percent must be a number from 0 to 100, got ${String(percent)}.`,
        {
          details: { field: "percent", value: percent },
        },
      );
    }
    if ((percent === undefined) === (options.names === undefined)) {
      throw new RotaError("INVALID_OPTION", "Give handover either a percent or schedule names.", {
        details: { field: "percent" },
      });
    }
    const names = options.names?.map(validateScheduleName) ?? null;
    const candidates = await this.db.run(this.q.HandoverCandidates, { names });
    if (names) {
      const found = new Set(candidates.rows.map((c) => c.name));
      const missing = names.filter((n) => !found.has(n));
      if (missing.length > 0) {
        throw new RotaError(
          "SCHEDULE_NOT_FOUND",
          `No schedule from another scheduler named ${missing.map((n) => `"${n}"`).join(", ")} (only schedules created with owner "external" take part in a hand-over).`,
          { details: { names: missing } },
        );
      }
    }
    const changes: HandoverChange[] = [];
    let done = 0;
    for (const candidate of candidates.rows) {
      const to: Owner =
        percent !== undefined
          ? Number(candidate.bucket) < percent
            ? "rota"
            : "external"
          : (options.to ?? "rota");
      if (to !== candidate.owner) {
        await this.transaction(async (client, events) => {
          const row = (await this.lock(client, null, candidate.id)) as LockedScheduleRow;
          if (row.owner === to) return;
          if (to === "external") {
            await this.supersede(
              client,
              events,
              row.id,
              null,
              "the schedule was handed back to the other scheduler",
            );
          }
          await this.setState(client, row.id, { owner: to, resetCursor: true });
          if (to === "rota") {
            await materializeOne(
              this.db,
              events,
              client,
              (await this.lock(client, null, row.id)) as LockedScheduleRow,
            );
          }
          changes.push({ name: row.name, from: row.owner, to });
        });
      }
      onProgress?.(++done, candidates.rows.length);
    }
    return changes;
  }

  // ── helpers ─────────────────────────────────────────────────────────────

  /**
   * Runs a target source as the orchestrator will (a cursor, one row read,
   * the same timeouts), in a savepoint: a query the database refuses (a
   * syntax error, a missing table or key column, one that writes, one that
   * takes too long) is a typed error, and the caller's transaction writes
   * nothing.
   */
  private async checkSource(client: Executor, schedule: NormalizedSchedule): Promise<void> {
    const q = targetQueries(this.db.schema);
    await client.query({ text: "savepoint rota_check_source" });
    try {
      await client.query({
        text: "select set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)",
        values: [`${TARGET_SOURCE_TIMEOUT_MS}ms`],
      });
      await this.db.runSpliced(
        q.CheckSource,
        {},
        { target_source: schedule.targetSource as string },
        client,
      );
      await this.db.run(q.FetchCheck, {}, client);
      await this.db.run(q.CloseCheck, {}, client);
      // Rolled back to the savepoint either way: that also undoes the timeouts.
      await client.query({ text: "rollback to savepoint rota_check_source" });
    } catch (cause) {
      await client.query({ text: "rollback to savepoint rota_check_source" });
      throw new RotaError(
        "INVALID_TARGET_SOURCE",
        `Schedule "${schedule.name}": its target source does not run: ${(cause as Error).message}. It must be one SELECT returning a key column, such as "select id::text as key from projects where scans_enabled".`,
        { cause, details: { name: schedule.name, field: "targetSource" } },
      );
    }
  }

  private async changeState(
    name: string,
    change: { paused?: boolean; enabled?: boolean },
    supersedeReason?: string,
  ): Promise<Schedule> {
    return this.transaction(async (client, events) => {
      const row = await this.require(client, name);
      if (supersedeReason) await this.supersede(client, events, row.id, null, supersedeReason);
      const resuming = change.paused === false || change.enabled === true;
      await this.setState(client, row.id, { ...change, resetCursor: resuming });
      if (resuming) {
        const fresh = (await this.lock(client, null, row.id)) as LockedScheduleRow;
        await materializeOne(this.db, events, client, fresh);
      }
      return this.current(client, row.id);
    });
  }

  private supersede(
    client: Executor,
    events: RotaEvents,
    id: string,
    keepVersion: string | null,
    reason: string,
  ): Promise<number> {
    return supersedeExecutions(this.db, events, client, id, keepVersion, reason);
  }

  private async setState(
    client: Executor,
    id: string,
    change: { paused?: boolean; enabled?: boolean; owner?: Owner; resetCursor?: boolean },
  ): Promise<void> {
    await this.db.run(
      this.q.SetState,
      {
        id,
        paused: change.paused ?? null,
        enabled: change.enabled ?? null,
        owner: change.owner ?? null,
        resetCursor: change.resetCursor ?? false,
      },
      client,
    );
  }

  private async lock(
    client: Executor,
    name: string | null,
    id?: string,
  ): Promise<LockedScheduleRow | null> {
    const result = await this.db.run(this.q.Lock, { name, id: id ?? null }, client);
    return result.rows[0] ?? null;
  }

  /** Schedule `id` as it stands in the caller's transaction, with its times. */
  private async current(client: Executor, id: string): Promise<Schedule> {
    const result = await this.db.run(this.q.Get, { name: null, id }, client);
    return toSchedule(result.rows[0] as ScheduleRow);
  }

  private async require(client: Executor, name: string): Promise<LockedScheduleRow> {
    const row = await this.lock(client, validateScheduleName(name));
    if (!row) throw notFound(name);
    return row;
  }
}
