/**
 * The input of `rota simulate`: a JSON array of schedules in the shape
 * `rota.schedules.upsert()` takes, each with the targets it fans out to.
 *
 *   [{ "name": "scan", "task": "scan", "cron": "0 9 * * *",
 *      "window": "1h", "distribution": "spread", "targets": 10000 }]
 *
 * `targets` is a count N, whose keys are "target-1" … "target-N"
 * (generatedTargetKeys), or an array of keys; without it a schedule runs its
 * own grid. Each entry is checked as upsert checks it (normalizeSchedule),
 * and a failure names the entry.
 */

import { wholeNumber } from "../config.js";
import { isRotaError, RotaError, rotaErrorIn } from "../errors.js";
import { DEFAULT_PAYLOAD_LIMIT_BYTES, rejectUnknownKeys } from "../queue/job-options.js";
import { normalizeSchedule, type ScheduleInput } from "./schedule-options.js";
import type { SimulatedSchedule } from "./simulate.js";
import { isTargetKey, TARGET_KEY_RULE } from "./target-key.js";

/** A schedule in a simulation file. */
export type SimulationEntry = ScheduleInput & { targets?: number | string[] };

/** The most targets one schedule may have in a simulation. */
export const MAX_SIMULATED_TARGETS = 1_000_000;

// Every field an entry may have: a Record, so a field added to ScheduleInput
// that is missing here fails to compile instead of being refused at run time.
const ENTRY_FIELDS: Record<keyof SimulationEntry, true> = {
  name: true,
  task: true,
  payload: true,
  cron: true,
  every: true,
  anchor: true,
  timezone: true,
  queue: true,
  priority: true,
  maxAttempts: true,
  catchUp: true,
  catchUpWindowMs: true,
  overlap: true,
  horizon: true,
  horizonMs: true,
  owner: true,
  window: true,
  distribution: true,
  seed: true,
  targetSource: true,
  targets: true,
};

/** The keys a target count stands for: "target-1" … "target-N". */
export function generatedTargetKeys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `target-${i + 1}`);
}

/**
 * Checks a parsed simulation file (`source` names it in errors) and returns
 * its schedules. Throws the RotaError of the first bad entry, its message
 * prefixed with the entry's place and name, its code kept.
 */
export function parseSimulationFile(value: unknown, source: string): SimulatedSchedule[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new RotaError(
      "INVALID_OPTION",
      `${source} must hold a JSON array of schedules, such as [{ "name": "scan", "task": "scan", "cron": "0 9 * * *", "window": "1h", "targets": 1000 }].`,
      { details: { field: "file" } },
    );
  }
  const names = new Set<string>();
  return value.map((entry: unknown, index) => {
    const where = `${source} entry ${index + 1}${nameOf(entry)}`;
    try {
      const simulated = parseEntry(entry);
      if (names.has(simulated.schedule.name)) {
        throw new RotaError(
          "INVALID_OPTION",
          `schedule "${simulated.schedule.name}" is given more than once; give each name once.`,
          { details: { name: simulated.schedule.name } },
        );
      }
      names.add(simulated.schedule.name);
      return simulated;
    } catch (error) {
      if (!isRotaError(error)) throw error;
      throw rotaErrorIn(where, error, { entry: index + 1 });
    }
  });
}

function nameOf(entry: unknown): string {
  const name = (entry as { name?: unknown } | null)?.name;
  return typeof name === "string" ? ` (${JSON.stringify(name.slice(0, 80))})` : "";
}

function parseEntry(entry: unknown): SimulatedSchedule {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new RotaError(
      "INVALID_OPTION",
      "a schedule must be an object with name, task, cron or every, and targets.",
      { details: { field: "schedule" } },
    );
  }
  // A misspelt "window" would otherwise simulate the herd it was meant to avoid.
  rejectUnknownKeys(entry, Object.keys(ENTRY_FIELDS), "a simulated schedule");
  const { targets, ...input } = entry as SimulationEntry;
  const schedule = normalizeSchedule(input, new Map(), DEFAULT_PAYLOAD_LIMIT_BYTES);
  if (targets === undefined && schedule.targetSource !== null) {
    throw new RotaError(
      "INVALID_OPTION",
      `schedule "${schedule.name}" reads its targets from a targetSource, which needs your database: give "targets" (a count, or the keys) standing in for what it returns.`,
      { details: { field: "targets" } },
    );
  }
  return { schedule, targets: targets === undefined ? null : targetKeys(schedule.name, targets) };
}

function targetKeys(name: string, targets: unknown): string[] {
  if (typeof targets === "number") {
    return generatedTargetKeys(wholeNumber("targets", targets, 1, MAX_SIMULATED_TARGETS));
  }
  if (!Array.isArray(targets) || targets.length === 0 || targets.length > MAX_SIMULATED_TARGETS) {
    throw new RotaError(
      "INVALID_TARGET",
      `targets of schedule "${name}" must be a count from 1 to ${MAX_SIMULATED_TARGETS} or an array of 1 to ${MAX_SIMULATED_TARGETS} keys; leave targets out for a schedule that runs its own grid.`,
      { details: { field: "targets" } },
    );
  }
  for (const key of targets) {
    if (!isTargetKey(key)) {
      throw new RotaError(
        "INVALID_TARGET",
        `invalid target ${JSON.stringify(key)?.slice(0, 80) ?? String(key)} of schedule "${name}": ${TARGET_KEY_RULE}.`,
        { details: { field: "targets" } },
      );
    }
  }
  // A key given twice is one target, as targets.add keeps it.
  return [...new Set(targets as string[])];
}
