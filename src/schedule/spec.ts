/**
 * Schedule maths, pure: no clock, no database. A spec is a cron expression or
 * an interval counted from an anchor, in an IANA timezone; it yields a grid of
 * occurrences, and `nextOccurrences(spec, after, count)` walks it.
 *
 * croner parses and matches the cron pattern; daylight saving time follows
 * ISC (Vixie) cron, which rota applies on top (cronGrid):
 *   - a fixed-time job whose local time does not exist (spring forward) runs
 *     once, right after the change (02:30 on a 02:00→03:00 night runs at 03:00);
 *   - a fixed-time job whose local time happens twice (fall back) runs once,
 *     at the first of the two;
 *   - a job with a wildcard hour ("0 * * * *", "*\/15 * * * *") keeps its
 *     real-time cadence through both changes.
 * `every` intervals in seconds, minutes or hours are exact elapsed time; in
 * days, weeks or months they are calendar steps in the timezone that keep the
 * anchor's local time of day (moved forward by the gap when it does not exist).
 */

import { Cron } from "croner";
import { DateTime, type Duration } from "luxon";
import { RotaError } from "../errors.js";

export type ScheduleSpec =
  | { cron: string; every?: undefined; anchor?: undefined; timezone: string }
  | { every: string; cron?: undefined; anchor?: Date | null; timezone: string };

/** The spec a stored schedule row describes (not validated: compileSpec does that). */
export function specOf(row: {
  cron: string | null;
  every: string | null;
  anchor: Date | null;
  timezone: string;
}): ScheduleSpec {
  return row.cron !== null
    ? { cron: row.cron, timezone: row.timezone }
    : { every: row.every as string, anchor: row.anchor, timezone: row.timezone };
}

/** A compiled spec: the first occurrence strictly after a time, or null if none is left. */
export interface Grid {
  next(after: Date): Date | null;
}

export const DEFAULT_TIMEZONE = "UTC";
/** The shortest `every` interval accepted. */
export const MIN_EVERY_MS = 1_000;
/** The longest exact `every` interval accepted (100 years). */
export const MAX_EVERY_MS = 100 * 365.25 * 86_400_000;

/** The next `count` occurrences strictly after `after`. */
export function nextOccurrences(spec: ScheduleSpec, after: Date, count: number): Date[] {
  const grid = compileSpec(spec);
  const out: Date[] = [];
  let at: Date | null = after;
  while (out.length < count) {
    at = grid.next(at);
    if (at === null) break;
    out.push(at);
  }
  return out;
}

const cache = new Map<string, Grid>();
const CACHE_LIMIT = 2_000;

/** Validates a spec and compiles it; throws a RotaError naming what is wrong. */
export function compileSpec(spec: ScheduleSpec): Grid {
  if ((spec.cron === undefined) === (spec.every === undefined)) {
    throw new RotaError(
      "INVALID_SCHEDULE_SPEC",
      "Give a schedule either cron or every, not both.",
      {
        details: { field: "cron" },
      },
    );
  }
  // The kind is part of the key, so a spec with both is never served from cache.
  const key =
    spec.cron !== undefined
      ? `cron\u001f${spec.cron}\u001f${spec.timezone}`
      : `every\u001f${spec.every}\u001f${spec.anchor?.getTime() ?? ""}\u001f${spec.timezone}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const timezone = validateTimezone(spec.timezone);
  const grid =
    spec.cron !== undefined
      ? cronGrid(spec.cron, timezone)
      : everyGrid(spec.every as string, spec.anchor ?? null, timezone);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, grid);
  return grid;
}

export function validateTimezone(timezone: unknown): string {
  if (typeof timezone === "string" && timezone !== "") {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: timezone });
      return timezone;
    } catch {
      // fall through to the error
    }
  }
  throw new RotaError(
    "INVALID_TIMEZONE",
    `Invalid timezone ${JSON.stringify(timezone)}: use an IANA name such as "UTC", "Europe/Berlin" or "America/New_York".`,
    { details: { field: "timezone", value: timezone } },
  );
}

const NICKNAMES = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"]);

function cronGrid(expression: unknown, timezone: string): Grid {
  const text = typeof expression === "string" ? expression.trim() : "";
  const fields = text.split(/\s+/).filter((f) => f !== "");
  const nickname = fields.length === 1 && NICKNAMES.has(text.toLowerCase());
  if (!nickname && fields.length !== 5 && fields.length !== 6) {
    throw invalidCron(
      expression,
      `it has ${fields.length} field${fields.length === 1 ? "" : "s"}; use 5 (minute hour day month weekday) or 6 (second first)`,
    );
  }
  const mode = fields.length === 6 ? "6-part" : "auto";
  let zoned: Cron;
  let wall: Cron;
  try {
    // A fixed UTC offset is several times cheaper in croner than the "UTC" zone.
    zoned =
      timezone === "UTC"
        ? new Cron(text, { utcOffset: 0, paused: true, mode })
        : new Cron(text, { timezone, paused: true, mode });
    wall = new Cron(text, { utcOffset: 0, paused: true, mode });
  } catch (cause) {
    throw invalidCron(expression, (cause as Error).message, cause);
  }
  // ISC cron's rule: a job whose minute or hour field starts with "*" is a
  // wildcard job and runs by real time; the others are fixed-time jobs and
  // run by the local wall clock, with the DST rules in the header.
  const [minute, hour] = nickname
    ? text.toLowerCase() === "@hourly"
      ? ["0", "*"]
      : ["0", "0"]
    : fields.length === 6
      ? [fields[1], fields[2]]
      : [fields[0], fields[1]];
  const wildcard = minute?.startsWith("*") || hour?.startsWith("*");
  if (wildcard || timezone === "UTC") return remembered((after) => zoned.nextRun(after));
  return remembered((after) => nextByWallClock(wall, timezone, after));
}

/**
 * Remembers the last answers: schedules that share a spec usually ask the
 * same question in the same pass (many cursors at the same minute).
 */
function remembered(next: (after: Date) => Date | null): Grid {
  const answers = new Map<number, Date | null>();
  return {
    next(after) {
      const key = after.getTime();
      const known = answers.get(key);
      if (known !== undefined) return known === null ? null : new Date(known);
      const answer = next(after);
      if (answers.size >= 64) answers.clear();
      answers.set(key, answer);
      return answer === null ? null : new Date(answer);
    },
  };
}

/**
 * The next wall-clock match after `after`, as an instant in `timezone`: a
 * local time that does not exist (spring forward) runs at the moment the
 * clocks change; one that exists twice (fall back) runs at the first.
 * `wall` is the same pattern evaluated on wall-clock times written as UTC.
 */
function nextByWallClock(wall: Cron, timezone: string, after: Date): Date | null {
  const local = DateTime.fromJSDate(after, { zone: timezone });
  let base = new Date(
    Date.UTC(
      local.year,
      local.month - 1,
      local.day,
      local.hour,
      local.minute,
      local.second,
      local.millisecond,
    ),
  );
  // A few steps at most: a wall time whose instant is not after `after`
  // (the second pass through a repeated hour) is stepped over.
  for (let step = 0; step < 1_000; step++) {
    const match = wall.nextRun(base);
    if (match === null) return null;
    const instant = wallToInstant(match, timezone);
    if (instant.getTime() > after.getTime()) return instant;
    base = match;
  }
  return null;
}

const HOUR_MS = 3_600_000;

/** A wall-clock time (written as UTC) to the instant it names in `timezone`. */
function wallToInstant(wall: Date, timezone: string): Date {
  const probe = wall.getTime();
  const offsetAt = (at: number) => DateTime.fromMillis(at, { zone: timezone }).offset;
  // Every offset the zone uses around that wall time: the instant it names
  // is within 14 hours of it (the largest UTC offset), and no zone changes
  // its offset twice within a day, so samples every 6 hours over ±36 hours
  // find both sides of any change that matters.
  const offsets = new Set<number>();
  for (let step = -6; step <= 6; step++) offsets.add(offsetAt(probe + step * 6 * HOUR_MS));
  const readings = [...offsets]
    .map((offset) => probe - offset * 60_000)
    .filter((at) => at + offsetAt(at) * 60_000 === probe)
    .sort((a, b) => a - b);
  // Ordinary: one reading; repeated hour (fall back): the first.
  if (readings.length > 0) return new Date(readings[0] as number);
  // Skipped hour (spring forward): the moment the clocks changed. Read with
  // the larger offset the wall time falls before the change, with the
  // smaller after it; bisect between, in whole seconds (zones change offset
  // on a second boundary).
  let lo = Math.floor((probe - Math.max(...offsets) * 60_000) / 1_000);
  let hi = Math.ceil((probe - Math.min(...offsets) * 60_000) / 1_000);
  const before = offsetAt(lo * 1_000);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(mid * 1_000) === before) lo = mid;
    else hi = mid;
  }
  return new Date(hi * 1_000);
}

function invalidCron(expression: unknown, why: string, cause?: unknown): RotaError {
  return new RotaError(
    "INVALID_CRON",
    `Invalid cron expression ${JSON.stringify(expression)}: ${why}. Example: "*/15 * * * *" (every 15 minutes) or "0 9 * * 1-5" (09:00 on weekdays).`,
    { cause, details: { field: "cron", value: expression } },
  );
}

/** An `every` interval: calendar months and days, plus exact milliseconds. */
export interface Interval {
  months: number;
  days: number;
  ms: number;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const SHORT = /^(\d+)(ms|s|m|h|d|w|mo)$/;
const ISO =
  /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/**
 * Parses "90m", "1h30m", "3d", "2w", "1mo" or an ISO 8601 duration such as
 * "PT90M" or "P3D". Throws INVALID_INTERVAL.
 */
export function parseInterval(text: unknown): Interval {
  const interval: Interval = { months: 0, days: 0, ms: 0 };
  const raw = typeof text === "string" ? text.trim() : "";
  let ok = raw !== "";
  if (ok && raw.toUpperCase().startsWith("P")) {
    const m = ISO.exec(raw.toUpperCase());
    if (!m || raw.length === 1 || raw.toUpperCase().endsWith("T")) ok = false;
    else {
      const n = (i: number) => Number(m[i] ?? 0);
      interval.months = n(1) * 12 + n(2);
      interval.days = n(3) * 7 + n(4);
      interval.ms = n(5) * 3_600_000 + n(6) * 60_000 + n(7) * 1_000;
    }
  } else if (ok) {
    const parts = raw.toLowerCase().match(/\d+(?:ms|mo|s|m|h|d|w)/g) ?? [];
    if (parts.join("") !== raw.toLowerCase().replace(/\s+/g, "")) ok = false;
    for (const part of parts) {
      const m = SHORT.exec(part) as RegExpExecArray;
      const value = Number(m[1]);
      const unit = m[2] as string;
      if (unit === "mo") interval.months += value;
      else if (unit === "w") interval.days += value * 7;
      else if (unit === "d") interval.days += value;
      else interval.ms += value * (UNIT_MS[unit] as number);
    }
  }
  if (ok && interval.months === 0 && interval.days === 0 && interval.ms < MIN_EVERY_MS) ok = false;
  // Longer than a century would step past the end of representable time.
  if (interval.months > 1_200 || interval.days > 36_525 || interval.ms > MAX_EVERY_MS) ok = false;
  if (!ok || !Number.isSafeInteger(interval.ms)) {
    throw new RotaError(
      "INVALID_INTERVAL",
      `Invalid interval ${JSON.stringify(text)}: use a duration from 1 second to 100 years such as "90m", "1h30m", "3d", "2w", "1mo", or ISO 8601 like "PT90M" or "P3D".`,
      { details: { field: "every", value: text } },
    );
  }
  return interval;
}

/**
 * The anchor an `every` schedule counts from when none is given: midnight,
 * 1 January 1970, in the schedule's timezone. Fixed, so the grid does not
 * depend on when the schedule was created.
 */
export function defaultAnchor(timezone: string): Date {
  return DateTime.fromObject({ year: 1970, month: 1, day: 1 }, { zone: timezone }).toJSDate();
}

function everyGrid(text: string, anchor: Date | null, timezone: string): Grid {
  const interval = parseInterval(text);
  if (anchor !== null && (!(anchor instanceof Date) || Number.isNaN(anchor.getTime()))) {
    throw new RotaError(
      "INVALID_INTERVAL",
      `Invalid anchor ${String(anchor)}: give a valid date.`,
      {
        details: { field: "anchor" },
      },
    );
  }
  const start = anchor ?? defaultAnchor(timezone);
  const startMs = start.getTime();
  if (interval.months === 0 && interval.days === 0) {
    // Exact elapsed time: occurrence k is anchor + k × interval.
    const step = interval.ms;
    return {
      next(after) {
        const t = after.getTime();
        if (t < startMs) return new Date(startMs);
        return new Date(startMs + (Math.floor((t - startMs) / step) + 1) * step);
      },
    };
  }
  // Calendar steps: occurrence k is computed from the anchor (never from the
  // previous occurrence), so month-end clamping and DST gaps do not drift.
  const local = DateTime.fromJSDate(start, { zone: timezone });
  const at = (k: number): number =>
    local.plus({ months: k * interval.months, days: k * interval.days } as Duration).toMillis() +
    k * interval.ms;
  const approxStep =
    interval.months * 30.436875 * 86_400_000 + interval.days * 86_400_000 + interval.ms;
  return {
    next(after) {
      const t = after.getTime();
      if (t < startMs) return new Date(startMs);
      let k = Math.max(0, Math.floor((t - startMs) / approxStep) - 1);
      while (at(k) > t && k > 0) k--;
      while (at(k) <= t) k++;
      const next = at(k);
      // Past the end of representable time, the grid has ended.
      return Number.isFinite(next) ? new Date(next) : null;
    },
  };
}
