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
import { BUILT_IN_DISTRIBUTIONS, validDistributionName } from "./distribution.js";
import type { CatchUp } from "./plan.js";
import { compileSpec, DEFAULT_TIMEZONE, parseInterval, type ScheduleSpec } from "./spec.js";

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
  /**
   * Fan-out: the window each cadence's targets are spread over, after the
   * occurrence ("1h", "90m", or ms), capped at the gap to the next occurrence.
   */
  window?: string | number;
  /**
   * How targets are placed in the window: "random" (default), "spread",
   * "batches:K/DURATION" or { batches: { size, every } }, or the name of a
   * strategy registered with defineDistribution.
   */
  distribution?: DistributionInput;
  /** What "random" draws from; default the schedule's name. */
  seed?: number;
  /**
   * An SQL query on your own tables returning a `key` column: the targets,
   * read again each cadence (those it stops returning leave). Makes the
   * schedule fan out.
   */
  targetSource?: string;
}

/** A distribution as given in a schedule's input. */
export type DistributionInput =
  | string
  | { batches: { size: number; every?: string | number; everyMs?: number } };

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
  windowMs: number | null;
  distribution: string;
  batchSize: number | null;
  batchEveryMs: number | null;
  seed: number | null;
  targetSource: string | null;
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
    ...normalizeFanOut(name, input),
  };
}

/** The longest window: a year. */
export const MAX_WINDOW_MS = 366 * 86_400_000;
/** The longest target source query accepted, in characters. */
export const MAX_TARGET_SOURCE_LENGTH = 10_000;

/** A duration as "1h", "90m", "PT1H" or whole ms (a day counts as 24 hours). */
export function parseDurationMs(field: string, value: unknown, max: number): number {
  if (typeof value === "number") return wholeNumber(field, value, 1, max);
  let ms = Number.NaN;
  try {
    const interval = parseInterval(value);
    if (interval.months === 0) ms = interval.days * 86_400_000 + interval.ms;
  } catch {
    // reported below, with this field's name
  }
  if (!(ms >= 1 && ms <= max)) {
    throw new RotaError(
      "INVALID_OPTION",
      `${field} must be a duration such as "30s", "15m", "1h" or "PT1H" (months are not a fixed length), or a whole number of ms, up to ${max} ms; got ${JSON.stringify(value)}.`,
      { details: { field, value } },
    );
  }
  return ms;
}

/** Parses a distribution: a name, "batches:K/DURATION", or { batches: { size, every } }. */
export function parseDistribution(value: unknown): {
  distribution: string;
  batchSize: number | null;
  batchEveryMs: number | null;
} {
  if (typeof value === "object" && value !== null && "batches" in value) {
    const batches = (value as { batches: unknown }).batches as {
      size?: unknown;
      every?: unknown;
      everyMs?: unknown;
    } | null;
    return {
      distribution: "batches",
      batchSize: wholeNumber("distribution.batches.size", batches?.size, 1, 2_147_483_647),
      batchEveryMs: parseDurationMs(
        "distribution.batches.every",
        batches?.everyMs ?? batches?.every,
        MAX_WINDOW_MS,
      ),
    };
  }
  const text = typeof value === "string" ? value.trim() : value;
  const batches = typeof text === "string" ? /^batches:(\d+)\/(.+)$/.exec(text) : null;
  if (batches) {
    return {
      distribution: "batches",
      batchSize: wholeNumber("distribution batch size", Number(batches[1]), 1, 2_147_483_647),
      batchEveryMs: parseDurationMs("distribution batch interval", batches[2], MAX_WINDOW_MS),
    };
  }
  if (text === "batches" || !validDistributionName(text)) {
    throw new RotaError(
      "INVALID_OPTION",
      `Invalid distribution ${JSON.stringify(value)}: use ${BUILT_IN_DISTRIBUTIONS.filter(
        (d) => d !== "batches",
      )
        .map((d) => `"${d}"`)
        .join(
          ", ",
        )}, "batches:K/DURATION" (such as "batches:100/1m"), { batches: { size, every } }, or the name of a strategy registered with defineDistribution.`,
      { details: { field: "distribution", value } },
    );
  }
  return { distribution: text, batchSize: null, batchEveryMs: null };
}

function normalizeFanOut(
  name: string,
  input: ScheduleInput,
): Pick<
  NormalizedSchedule,
  "windowMs" | "distribution" | "batchSize" | "batchEveryMs" | "seed" | "targetSource"
> {
  const windowMs =
    input.window === undefined ? null : parseDurationMs("window", input.window, MAX_WINDOW_MS);
  const choice = parseDistribution(input.distribution ?? "random");
  if (choice.distribution !== "random" && windowMs === null) {
    throw new RotaError(
      "INVALID_OPTION",
      `Schedule "${name}": distribution "${choice.distribution}" places targets inside a window; give one (window: "1h").`,
      { details: { field: "window" } },
    );
  }
  const seed =
    input.seed === undefined
      ? null
      : wholeNumber("seed", input.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  return { windowMs, ...choice, seed, targetSource: validateTargetSource(input.targetSource) };
}

/**
 * A target source's shape (the database checks the query itself when the
 * schedule is written): one SELECT, without parameters or a trailing ";".
 */
function validateTargetSource(source: unknown): string | null {
  if (source === undefined || source === null) return null;
  const text = typeof source === "string" ? source.trim() : "";
  const why =
    typeof source !== "string" || text === ""
      ? "give an SQL query returning a key column"
      : text.length > MAX_TARGET_SOURCE_LENGTH
        ? `it is longer than ${MAX_TARGET_SOURCE_LENGTH} characters`
        : text.endsWith(";")
          ? 'remove the trailing ";" (give one query)'
          : /\$\d/.test(text)
            ? "it refers to a parameter ($1 ...), but a target source takes none"
            : text.includes("\u0000")
              ? "it contains a NUL character"
              : null;
  if (why !== null) {
    throw new RotaError(
      "INVALID_TARGET_SOURCE",
      `Invalid target source: ${why}. Example: "select id::text as key from projects where scans_enabled".`,
      { details: { field: "targetSource", value: source } },
    );
  }
  return text;
}
