/**
 * A schedule's targets (`rota.schedules.targets`): add, remove, list and
 * count the keys a schedule fans out to (docs/scheduling.md, "Targets,
 * windows and strategies"). Adding is streamed: any iterable or async
 * iterable, written 5,000 keys per statement in one transaction, so 100,000
 * keys are one call in bounded memory, and a bad key anywhere writes nothing.
 */

import type { Database, Executor } from "../db/database.js";
import { clockQueries } from "../db/queries/clock.js";
import type { LockedScheduleRow } from "../db/queries/schedules.js";
import { targetQueries } from "../db/queries/targets.js";
import { RotaError } from "../errors.js";
import { type RotaEvents, transactionWithEvents } from "../events.js";
import { serializePayload } from "../queue/job-options.js";
import { joinPlannedCadences } from "./fan-out.js";
import { materializeOne, supersedeExecutions } from "./materializer.js";
import { validateLimit } from "./schedule-timeline.js";
import { compileSpec, specOf } from "./spec.js";
import { isTargetKey, TARGET_KEY_RULE } from "./target-key.js";

/** A target as given to `targets.add`: a key, or a key with a payload override and flag. */
export type TargetInput = string | { key: string; payload?: unknown; enabled?: boolean };

export interface Target {
  key: string;
  /** Merged over the schedule's payload (objects key by key; otherwise it replaces it). */
  payload: unknown;
  enabled: boolean;
  /** Added by the schedule's target source (which removes it when its query stops returning it). */
  fromSource: boolean;
  createdAt: Date;
  /** Its next planned execution: when it becomes claimable, its offset and occurrence. */
  nextRunAt: Date | null;
  offsetMs: number | null;
  nextOccurrenceAt: Date | null;
}

export interface AddTargetsResult {
  /** Keys that were new. */
  added: number;
  /** Keys already there whose payload or enabled flag changed. */
  updated: number;
  /** Keys already there as given (nothing changed). */
  existing: number;
}

/** Keys per statement. */
export const TARGET_BATCH = 5_000;

/** The hooks the schedules API lends (locking a schedule by name, and its state changes). */
export interface ScheduleAccess {
  /** The schedule's row, locked for the caller's transaction. */
  require(client: Executor, name: string): Promise<LockedScheduleRow>;
  /** The schedule's row, not locked. */
  read(client: Executor, name: string): Promise<LockedScheduleRow>;
  resetCursor(client: Executor, id: string): Promise<void>;
  lockById(client: Executor, id: string): Promise<LockedScheduleRow>;
}

export class ScheduleTargets {
  private readonly q;

  constructor(
    private readonly db: Database,
    private readonly events: RotaEvents,
    private readonly schedules: ScheduleAccess,
    private readonly payloadLimitBytes: number,
  ) {
    this.q = targetQueries(db.schema);
  }

  /**
   * Adds targets to schedule `name` (idempotent: a key given again as it is
   * changes nothing, and a plain key leaves a stored payload or flag alone).
   * The schedule fans out from then on: its first targets replace its own
   * grid, whose planned executions are superseded in the same transaction.
   * A new target takes its slot in the cadences already planned where it is
   * still ahead (random and custom strategies), else joins the next one.
   * The schedule's row is locked only at the end: a long stream of keys
   * does not hold up the orchestrator.
   */
  async add(
    name: string,
    targets: Iterable<TargetInput> | AsyncIterable<TargetInput>,
    options: { onProgress?: (done: number) => void } = {},
  ): Promise<AddTargetsResult> {
    return transactionWithEvents(this.db, this.events, async (client, events) => {
      const row = await this.schedules.read(client, name);
      const now = (await this.db.run(clockQueries(this.db.schema).Now, {}, client)).rows[0]
        ?.now as Date;
      const grid = row.fan_out ? compileSpec(specOf(row)) : null;
      const result: AddTargetsResult = { added: 0, updated: 0, existing: 0 };
      let seen = 0;
      for await (const batch of batches(targets, TARGET_BATCH)) {
        const byKey = new Map<string, { payload: string | null; enabled: boolean | null }>();
        for (const target of batch) {
          const { key, payload, enabled } = this.validate(name, target);
          byKey.set(key, { payload, enabled });
        }
        const written = await this.db.run(
          this.q.Add,
          {
            scheduleId: row.id,
            keys: [...byKey.keys()],
            payloads: [...byKey.values()].map((v) => v.payload),
            enabled: [...byKey.values()].map((v) => v.enabled),
          },
          client,
        );
        const counts = written.rows[0];
        result.added += counts?.added ?? 0;
        result.updated += counts?.updated ?? 0;
        seen += byKey.size;
        if (grid !== null && counts !== undefined) {
          await joinPlannedCadences(
            this.db,
            client,
            row,
            grid,
            counts.added_keys,
            now,
            row.cursor_at,
          );
        }
        options.onProgress?.(seen);
      }
      result.existing = seen - result.added - result.updated;
      if (!row.fan_out && seen > 0) {
        await this.startFanOut(client, events, await this.schedules.require(client, name));
      }
      return result;
    });
  }

  /** Removes targets and their executions that have not started (running ones finish). */
  async remove(
    name: string,
    keys: Iterable<string> | AsyncIterable<string>,
  ): Promise<{ removed: number; removedExecutions: number }> {
    return this.db.transaction(async (client) => {
      const row = await this.schedules.require(client, name);
      const total = { removed: 0, removedExecutions: 0 };
      for await (const batch of batches(keys, TARGET_BATCH)) {
        const valid = batch.map((key) => validateKey(name, key));
        const result = await this.db.run(
          this.q.Remove,
          { scheduleId: row.id, keys: valid },
          client,
        );
        total.removed += result.rows[0]?.removed ?? 0;
        total.removedExecutions += result.rows[0]?.removed_executions ?? 0;
      }
      return total;
    });
  }

  /** Targets in key order (bytes), `limit` (default 100) after key `after`. */
  async list(name: string, options: { after?: string; limit?: number } = {}): Promise<Target[]> {
    const limit = validateLimit(options.limit ?? 100);
    const after = options.after === undefined ? null : validateKey(name, options.after);
    const scheduleId = (await this.schedules.read(this.db.pool, name)).id;
    const result = await this.db.run(this.q.List, { scheduleId, after, limit });
    return result.rows.map((r) => ({
      key: r.target_key,
      payload: r.payload,
      enabled: r.enabled,
      fromSource: r.from_source,
      createdAt: r.created_at,
      nextRunAt: r.next_run_at,
      offsetMs: r.offset_ms,
      nextOccurrenceAt: r.next_occurrence_at,
    }));
  }

  /** How many targets the schedule has (enabled or not). */
  async count(name: string): Promise<number> {
    const scheduleId = (await this.schedules.read(this.db.pool, name)).id;
    const result = await this.db.run(this.q.Count, { scheduleId });
    return result.rows[0]?.total ?? 0;
  }

  /** The schedule's first targets: it runs for them from now on, not for its own grid. */
  private async startFanOut(
    client: Executor,
    events: RotaEvents,
    row: LockedScheduleRow,
  ): Promise<void> {
    const changed = await this.db.run(this.q.SetFanOut, { scheduleId: row.id }, client);
    const version = changed.rows[0]?.version;
    if (version === undefined) return;
    await supersedeExecutions(
      this.db,
      events,
      client,
      row.id,
      version,
      "the schedule now runs for its targets",
    );
    await this.schedules.resetCursor(client, row.id);
    await materializeOne(this.db, events, client, await this.schedules.lockById(client, row.id));
  }

  /** A target as the Add statement takes it: null where a field was not given. */
  private validate(
    name: string,
    target: TargetInput,
  ): { key: string; payload: string | null; enabled: boolean | null } {
    if (typeof target === "string") {
      return { key: validateKey(name, target), payload: null, enabled: null };
    }
    if (typeof target !== "object" || target === null || Array.isArray(target)) {
      throw invalidTarget(name, target, "give a key (a string) or { key, payload?, enabled? }");
    }
    const key = validateKey(name, target.key);
    if (target.enabled !== undefined && typeof target.enabled !== "boolean") {
      throw invalidTarget(name, target, "enabled must be true or false");
    }
    const payload =
      target.payload === undefined
        ? null
        : serializePayload(`target ${key}`, target.payload, this.payloadLimitBytes);
    return { key, payload, enabled: target.enabled ?? null };
  }
}

/** No enabled target `key` on schedule `name`. */
export function targetNotFound(name: string, key: string): RotaError {
  return new RotaError(
    "TARGET_NOT_FOUND",
    `Schedule "${name}" has no enabled target ${JSON.stringify(key)} (rota schedules targets list ${name} shows them).`,
    { details: { name, target: key } },
  );
}

/** A target key, or INVALID_TARGET. */
export function validateKey(name: string, key: unknown): string {
  if (!isTargetKey(key)) throw invalidTarget(name, key, TARGET_KEY_RULE);
  return key;
}

function invalidTarget(name: string, value: unknown, why: string): RotaError {
  let shown: string;
  try {
    shown = JSON.stringify(value)?.slice(0, 80) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new RotaError(
    "INVALID_TARGET",
    `Invalid target ${shown} for schedule "${name}": ${why}. Nothing was written.`,
    { details: { name, field: "target" } },
  );
}

/** An iterable (sync or async) in arrays of `size`. */
async function* batches<T>(
  source: Iterable<T> | AsyncIterable<T>,
  size: number,
): AsyncGenerator<T[]> {
  if (
    source === null ||
    typeof source !== "object" ||
    (!(Symbol.iterator in source) && !(Symbol.asyncIterator in source)) ||
    typeof source === "string"
  ) {
    throw new RotaError(
      "INVALID_TARGET",
      "Give targets as an array, an iterable or an async iterable of keys.",
      { details: { field: "targets" } },
    );
  }
  let batch: T[] = [];
  for await (const item of source as AsyncIterable<T>) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
