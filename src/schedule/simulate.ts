/**
 * Simulation, pure (`rota simulate`): how many executions a set of schedules
 * starts in each UTC minute of a range, without a database. Each schedule's
 * grid is walked with compileSpec and each cadence placed with placeCadence
 * and orderTargets, the code the orchestrator writes cadences with
 * (fan-out.ts), so the counts are those the orchestrator would write for the
 * same schedules and targets.
 *
 *   occurrences in (from − window, to) ─▶ run_at = occurrence + offset(target)
 *   ─▶ counted in its minute when from ≤ run_at < to
 *
 * A schedule with targets runs each target at occurrence + offset, inside
 * min(window, gap to the next occurrence); one without targets runs its own
 * grid, once per occurrence, at the occurrence (its window is not used).
 * The counts are planned run times: what a running schedule does besides
 * (overlap "skip" or "queue" holding a run back, catch-up after downtime,
 * a schedule paused or owned by another scheduler) is not simulated.
 */

import { isRotaError, RotaError, rotaErrorIn } from "../errors.js";
import {
  BUILT_IN_DISTRIBUTIONS,
  type DistributionChoice,
  isDistributionRegistered,
  orderTargets,
  placeCadence,
  seedOf,
  type TargetOrder,
} from "./distribution.js";
import type { NormalizedSchedule } from "./schedule-options.js";
import { compileSpec, specOf } from "./spec.js";

/** A schedule to simulate, with the targets it fans out to. */
export interface SimulatedSchedule {
  schedule: Pick<
    NormalizedSchedule,
    | "name"
    | "cron"
    | "every"
    | "anchor"
    | "timezone"
    | "windowMs"
    | "distribution"
    | "batchSize"
    | "batchEveryMs"
    | "seed"
  >;
  /** Its target keys; null: no targets, it runs its own grid. */
  targets: readonly string[] | null;
}

/** The executions one schedule starts per minute of the range. */
export interface ScheduleLoad {
  name: string;
  /** Executions whose run time falls in the range. */
  executions: number;
  /** The most in one minute, and the first minute with that many (null: none ran). */
  peak: number;
  peakMinute: Date | null;
  /** One count per minute of the range, from `from`. */
  perMinute: number[];
}

export interface Simulation {
  from: Date;
  to: Date;
  /** All schedules together, one count per minute of the range. */
  perMinute: number[];
  peak: number;
  peakMinute: Date | null;
  schedules: ScheduleLoad[];
}

export const MINUTE_MS = 60_000;
/** The longest range: a month of minutes (44,640 counts per schedule). */
export const MAX_SIMULATION_DAYS = 31;
/**
 * The most executions placed in one simulation: a random placement costs an
 * MD5 (about 2 µs), so this is some 20 s of work; more is a range or a
 * target count to cut down, not a wait to sit through.
 */
export const MAX_SIMULATED_EXECUTIONS = 10_000_000;

/** Checks a range: whole UTC minutes, `from` before `to`, at most MAX_SIMULATION_DAYS. */
export function validateRange(from: Date, to: Date): void {
  for (const [flag, at] of [
    ["--from", from],
    ["--to", to],
  ] as const) {
    // Whole minutes, so every minute counted is counted whole.
    if (Number.isNaN(at.getTime()) || at.getTime() % MINUTE_MS !== 0) {
      throw new RotaError(
        "INVALID_OPTION",
        `${flag} must be a time on a whole minute, such as "2026-03-02T08:30:00Z"; got ${Number.isNaN(at.getTime()) ? "an invalid time" : at.toISOString()}.`,
        { details: { field: flag } },
      );
    }
  }
  if (to.getTime() <= from.getTime()) {
    throw new RotaError(
      "INVALID_OPTION",
      `--to (${to.toISOString()}) must be after --from (${from.toISOString()}).`,
      { details: { field: "--to" } },
    );
  }
  const days = (to.getTime() - from.getTime()) / 86_400_000;
  if (days > MAX_SIMULATION_DAYS) {
    throw new RotaError(
      "SIMULATION_TOO_LARGE",
      `The range from ${from.toISOString()} to ${to.toISOString()} is ${days.toFixed(1)} days; simulate at most ${MAX_SIMULATION_DAYS} days at a time.`,
      { details: { field: "--to", days, maxDays: MAX_SIMULATION_DAYS } },
    );
  }
}

/** Counts the executions `schedules` start per UTC minute of [from, to). */
export function simulate(
  schedules: readonly SimulatedSchedule[],
  range: { from: Date; to: Date },
): Simulation {
  const { from, to } = range;
  validateRange(from, to);
  for (const { schedule, targets } of schedules) {
    if (targets !== null) requireRegistered(schedule.name, schedule.distribution);
  }
  const minutes = (to.getTime() - from.getTime()) / MINUTE_MS;
  // Every occurrence is listed before any is placed, so a simulation past
  // the limit fails at once instead of after most of its work.
  let planned = 0;
  const walks = schedules.map((simulated) => {
    const occurrences = occurrencesOf(simulated, from, to, (count) => {
      planned += count;
      if (planned > MAX_SIMULATED_EXECUTIONS) throw tooLarge(simulated.schedule.name);
    });
    return { simulated, occurrences };
  });
  const loads = walks.map(({ simulated, occurrences }) => {
    try {
      return loadOf(simulated, occurrences, from, minutes);
    } catch (error) {
      // A strategy's refusal (batches that do not fit) names the cadence, not the schedule.
      if (!isRotaError(error)) throw error;
      const { name } = simulated.schedule;
      throw rotaErrorIn(`Schedule "${name}"`, error, { name });
    }
  });
  const perMinute = new Array<number>(minutes).fill(0);
  for (const load of loads) {
    for (let m = 0; m < minutes; m++) {
      perMinute[m] = (perMinute[m] as number) + (load.perMinute[m] as number);
    }
  }
  return { from, to, perMinute, ...peakOf(perMinute, from), schedules: loads };
}

/**
 * A schedule's occurrences in the range, as ms: a month of a per-second
 * grid is 2.7 million of them, kept as numbers rather than Dates.
 */
interface Occurrences {
  times: number[];
  /** The occurrence after the last one (the next of the last), or null: the grid ended. */
  after: number | null;
}

/**
 * The occurrences whose executions can start in [from, to): those after
 * from − window (an offset is below the window) and before `to`.
 */
function occurrencesOf(
  { schedule, targets }: SimulatedSchedule,
  from: Date,
  to: Date,
  onOccurrence: (executions: number) => void,
): Occurrences {
  const grid = compileSpec(specOf(schedule));
  const reach = targets === null ? 0 : (schedule.windowMs ?? 0);
  // grid.next is strictly after: one ms back keeps an occurrence at `from`.
  let at = grid.next(new Date(from.getTime() - Math.max(reach, 1)));
  const times: number[] = [];
  while (at !== null && at.getTime() < to.getTime()) {
    times.push(at.getTime());
    onOccurrence(targets === null ? 1 : targets.length);
    at = grid.next(at);
  }
  return { times, after: at === null ? null : at.getTime() };
}

function loadOf(
  { schedule, targets }: SimulatedSchedule,
  occurrences: Occurrences,
  from: Date,
  minutes: number,
): ScheduleLoad {
  const perMinute = new Array<number>(minutes).fill(0);
  const fromMs = from.getTime();
  const count = (runAtMs: number) => {
    const minute = Math.floor((runAtMs - fromMs) / MINUTE_MS);
    if (minute >= 0 && minute < minutes) perMinute[minute] = (perMinute[minute] as number) + 1;
  };
  if (targets === null) {
    for (const atMs of occurrences.times) count(atMs);
  } else {
    const choice: DistributionChoice = {
      name: schedule.distribution,
      batchSize: schedule.batchSize,
      batchEveryMs: schedule.batchEveryMs,
    };
    const seed = seedOf(schedule);
    // The placement order depends on the keys and the seed only, not on the
    // cadence: sorted once per order, as placeKeys would sort each cadence.
    const ordered = new Map<TargetOrder, string[]>();
    const { times, after } = occurrences;
    for (let i = 0; i < times.length; i++) {
      const atMs = times[i] as number;
      const nextMs = times[i + 1] ?? after;
      const placement = placeCadence(choice, {
        occurrence: new Date(atMs),
        next: nextMs === null ? null : new Date(nextMs),
        windowMs: schedule.windowMs,
        seed,
        total: targets.length,
      });
      let keys = ordered.get(placement.order);
      if (keys === undefined) {
        keys = orderTargets(targets, placement.order, seed);
        ordered.set(placement.order, keys);
      }
      for (let rank = 0; rank < keys.length; rank++) {
        count(atMs + placement.offset(keys[rank] as string, rank));
      }
    }
  }
  const executions = perMinute.reduce((sum, n) => sum + n, 0);
  return { name: schedule.name, executions, ...peakOf(perMinute, from), perMinute };
}

/** The largest count and the first minute with it. */
function peakOf(
  perMinute: readonly number[],
  from: Date,
): { peak: number; peakMinute: Date | null } {
  let peak = 0;
  let at = -1;
  for (let m = 0; m < perMinute.length; m++) {
    if ((perMinute[m] as number) > peak) {
      peak = perMinute[m] as number;
      at = m;
    }
  }
  return { peak, peakMinute: at < 0 ? null : new Date(from.getTime() + at * MINUTE_MS) };
}

/**
 * A custom strategy lives in the code of the process that plans
 * (defineDistribution); a simulation from a file has none to call.
 */
function requireRegistered(name: string, distribution: string): void {
  if (isDistributionRegistered(distribution)) return;
  throw new RotaError(
    "DISTRIBUTION_NOT_REGISTERED",
    `Schedule "${name}" uses distribution "${distribution}", a custom strategy that is not registered in this process. rota simulate cannot register one (defineDistribution runs in your own code, where the orchestrator runs), so it cannot say where "${distribution}" places targets; simulate a built-in strategy in its place (${BUILT_IN_DISTRIBUTIONS.filter(
      (d) => d !== "batches",
    )
      .map((d) => `"${d}"`)
      .join(", ")} or "batches:K/DURATION").`,
    { details: { name, distribution } },
  );
}

function tooLarge(name: string): RotaError {
  return new RotaError(
    "SIMULATION_TOO_LARGE",
    `The simulation would place more than ${MAX_SIMULATED_EXECUTIONS.toLocaleString("en-US")} executions (the limit was passed at schedule "${name}"): shorten the range or simulate fewer targets.`,
    { details: { name, limit: MAX_SIMULATED_EXECUTIONS } },
  );
}
