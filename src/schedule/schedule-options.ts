import { wholeNumber } from "../config.js";
import type { Overlap, Owner } from "../db/queries/schedules.js";
import { RotaError } from "../errors.js";
import {
  DEFAULT_QUEUE,
  serializePayload,
  validateQueueName,
  validateTaskName,
} from "../queue/job-options.js";
import type { TaskDefinition } from "../task.js";
import type { CatchUp } from "./plan.js";
import { compileSpec, DEFAULT_TIMEZONE, type ScheduleSpec } from "./spec.js";

/** A schedule as given to `rota.schedules.upsert()` (and `rota schedules add`). */
export interface ScheduleInput<Payload = unknown> {
  /** Unique; upsert by name is idempotent. */
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: any task definition's output type
  task: string | TaskDefinition<Payload, any>;
  payload?: Payload;
  /** A cron expression, 5 fields (minute first) or 6 (second first). */
  cron?: string;
  /** Or an interval: "90m", "1h30m", "3d", "2w", "1mo", "PT90M", "P3D". */
  every?: string;
  /** Where an `every` grid starts (default midnight 1970-01-01 in the timezone). */
  anchor?: Date | string;
  /** IANA timezone of the spec; default "UTC". */
  timezone?: string;
  queue?: string;
  priority?: number;
  /** Attempts per execution; default the job default (25). */
  maxAttempts?: number;
  /** After downtime: run "all" missed occurrences, only the "latest" (default), or "none". */
  catchUp?: CatchUp;
  /** An execution not started this long after its occurrence becomes 'missed'. */
  catchUpWindowMs?: number;
  /** While the previous execution still runs: "allow" (default), "skip" or "queue". */
  overlap?: Overlap;
  /** Future executions kept materialized, at least; default 3. */
  horizon?: number;
  /**
   * How far ahead of now executions are kept materialized, at least, besides
   * `horizon` of them: default 60 s, more than a leader failover takes (keep
   * it above twice the orchestrators' leaseTtlMs). What it adds beyond
   * `horizon` is capped at TIME_HORIZON_CAP executions; 0 turns it off.
   */
  horizonMs?: number;
  /** "external": another scheduler fires it until `handover`; default "rota". */
  owner?: Owner;
}

/** The validated input, in the shape of the schedules table. */
export interface NormalizedSchedule {
  name: string;
  task: string;
  payload: string;
  queue: string;
  priority: number;
  maxAttempts: number | null;
  cron: string | null;
  every: string | null;
  anchor: Date | null;
  timezone: string;
  catchUp: CatchUp;
  catchUpWindowMs: number | null;
  overlap: Overlap;
  horizon: number;
  horizonMs: number;
  owner: Owner;
}

export const DEFAULT_HORIZON = 3;
export const MAX_HORIZON = 1_000;
/** The default time horizon: four default leader leases (15 s), so a failover delays nothing planned. */
export const DEFAULT_HORIZON_MS = 60_000;
/** The longest time horizon: a day. */
export const MAX_HORIZON_MS = 86_400_000;
const SCHEDULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$/;

export function validateScheduleName(name: unknown): string {
  if (typeof name !== "string" || !SCHEDULE_NAME.test(name)) {
    throw new RotaError(
      "INVALID_SCHEDULE_NAME",
      `Invalid schedule name ${JSON.stringify(name)}: use 1-200 characters of letters, digits, "_", ".", ":", "/", "@" or "-", starting with a letter or digit.`,
      { details: { field: "name", value: name } },
    );
  }
  return name;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value))
    return value as T;
  throw new RotaError(
    "INVALID_OPTION",
    `${field} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(value)}.`,
    { details: { field, value } },
  );
}

function parseAnchor(anchor: unknown): Date | null {
  if (anchor === undefined || anchor === null) return null;
  const date =
    anchor instanceof Date ? anchor : typeof anchor === "string" ? new Date(anchor) : null;
  // Years 1900-9999: a grid counted from further away is a typo, and past
  // year 9999 neither the database nor the calendar maths can follow it.
  const year = date?.getUTCFullYear() ?? Number.NaN;
  if (date === null || Number.isNaN(date.getTime()) || year < 1900 || year > 9999) {
    throw new RotaError(
      "INVALID_INTERVAL",
      `Invalid anchor ${JSON.stringify(anchor)}: give a Date or an ISO 8601 time between the years 1900 and 9999, such as "2026-01-05T09:00:00Z".`,
      { details: { field: "anchor", value: anchor } },
    );
  }
  return date;
}

/** Checks every field; throws a RotaError naming the first bad one. Writes nothing. */
export function normalizeSchedule(
  input: ScheduleInput,
  tasks: Map<string, TaskDefinition>,
  payloadLimitBytes: number,
): NormalizedSchedule {
  if (typeof input !== "object" || input === null) {
    throw new RotaError(
      "INVALID_OPTION",
      "A schedule must be an object with name, task and cron or every.",
      {
        details: { field: "schedule" },
      },
    );
  }
  const name = validateScheduleName(input.name);
  const given = typeof input.task === "object" && input.task !== null ? input.task : null;
  const task = validateTaskName(given ? given.name : input.task);
  // A task registered by name supplies its defaults too (queue, attempts).
  const definition = given ?? tasks.get(task) ?? null;
  if (!definition && tasks.size > 0) {
    throw new RotaError(
      "UNKNOWN_TASK",
      `Unknown task "${task}" for schedule "${name}": registered tasks are ${[...tasks.keys()].map((k) => `"${k}"`).join(", ")}.`,
      { details: { task, known: [...tasks.keys()] } },
    );
  }
  const timezone = input.timezone ?? DEFAULT_TIMEZONE;
  const anchor = parseAnchor(input.anchor);
  if (input.cron !== undefined && input.every !== undefined) {
    throw new RotaError(
      "INVALID_SCHEDULE_SPEC",
      `Schedule "${name}": give cron or every, not both.`,
      {
        details: { field: "cron" },
      },
    );
  }
  if (input.cron === undefined && input.every === undefined) {
    throw new RotaError(
      "INVALID_SCHEDULE_SPEC",
      `Schedule "${name}" needs a cron expression (cron: "0 9 * * *") or an interval (every: "90m").`,
      { details: { field: "cron" } },
    );
  }
  if (input.cron !== undefined && anchor !== null) {
    throw new RotaError(
      "INVALID_SCHEDULE_SPEC",
      `Schedule "${name}": anchor goes with every, not cron.`,
      {
        details: { field: "anchor" },
      },
    );
  }
  const spec: ScheduleSpec =
    input.cron !== undefined
      ? { cron: input.cron, timezone }
      : { every: input.every as string, anchor, timezone };
  compileSpec(spec);
  const queue = validateQueueName(input.queue ?? definition?.queue ?? DEFAULT_QUEUE);
  const priority = wholeNumber("priority", input.priority ?? 0, -2_147_483_648, 2_147_483_647);
  const maxAttempts = input.maxAttempts ?? definition?.maxAttempts ?? null;
  if (maxAttempts !== null) wholeNumber("maxAttempts", maxAttempts, 1, 2_147_483_647);
  const windowMs = input.catchUpWindowMs ?? null;
  if (windowMs !== null) wholeNumber("catchUpWindowMs", windowMs, 1, Number.MAX_SAFE_INTEGER);
  return {
    name,
    task,
    payload: serializePayload(task, input.payload, payloadLimitBytes),
    queue,
    priority,
    maxAttempts,
    cron: input.cron !== undefined ? input.cron.trim() : null,
    every: input.every !== undefined ? input.every.trim() : null,
    anchor,
    timezone,
    catchUp: oneOf("catchUp", input.catchUp ?? "latest", ["all", "latest", "none"] as const),
    catchUpWindowMs: windowMs,
    overlap: oneOf("overlap", input.overlap ?? "allow", ["allow", "skip", "queue"] as const),
    horizon: wholeNumber("horizon", input.horizon ?? DEFAULT_HORIZON, 1, MAX_HORIZON),
    horizonMs: wholeNumber("horizonMs", input.horizonMs ?? DEFAULT_HORIZON_MS, 0, MAX_HORIZON_MS),
    owner: oneOf("owner", input.owner ?? "rota", ["rota", "external"] as const),
  };
}
