/**
 * Distribution strategies, pure: where each target of a fanned-out schedule
 * runs inside one cadence's window (docs/scheduling.md, "Targets, windows and
 * strategies"). The orchestrator, `upcoming`, `rota schedules plan` and
 * `rota simulate` all place targets with `placeCadence`, so what simulate
 * predicts is what the orchestrator writes.
 *
 *   occurrence ─┬─ offset(target) ─▶ run_at = occurrence + offset
 *               └─ window: [0, min(window, gap to the next occurrence))
 *
 * - random: uniform in the window, drawn from (seed, occurrence, key): a new
 *   draw each cadence, the same draw for the same seed.
 * - spread: targets ranked by a hash of (seed, key) and evenly spaced
 *   through the window: each keeps its place across cadences while the
 *   target set is unchanged, and the load is flat.
 * - batches: targets in key order, `size` per slot, one slot every `everyMs`.
 * - a custom strategy registered with defineDistribution: a pure function of
 *   key, occurrence and window.
 */

import * as crypto from "node:crypto";
import { RotaError } from "../errors.js";

/** A schedule's choice of strategy, as stored. */
export interface DistributionChoice {
  name: string;
  batchSize: number | null;
  batchEveryMs: number | null;
}

/** What a custom strategy is given for one target. */
export interface DistributionTarget {
  key: string;
  occurrence: Date;
  /** The capped window, in ms: return an offset in [0, windowMs). */
  windowMs: number;
  /** The schedule's seed (its `seed`, or its name when it has none). */
  seed: string;
}

/** A custom strategy: the offset in ms of one target. Must be pure. */
export type DistributionFn = (target: DistributionTarget) => number;

export const BUILT_IN_DISTRIBUTIONS = ["random", "spread", "batches"] as const;
const NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
const registry = new Map<string, DistributionFn>();

/**
 * Registers a custom strategy by name in this process. An orchestrator plans
 * a schedule that names it only when the strategy is registered in it.
 */
export function defineDistribution(name: string, fn: DistributionFn): { name: string } {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new RotaError(
      "INVALID_OPTION",
      `Invalid distribution name ${JSON.stringify(name)}: use 1-64 letters, digits, "_", ".", ":" or "-", starting with a letter.`,
      { details: { field: "name", value: name } },
    );
  }
  if ((BUILT_IN_DISTRIBUTIONS as readonly string[]).includes(name)) {
    throw new RotaError(
      "INVALID_OPTION",
      `"${name}" is a built-in distribution; register a custom one under another name.`,
      { details: { field: "name", value: name } },
    );
  }
  if (typeof fn !== "function") {
    throw new RotaError("INVALID_OPTION", `Distribution "${name}" needs a function.`, {
      details: { field: "fn" },
    });
  }
  registry.set(name, fn);
  return { name };
}

/**
 * Throws DISTRIBUTION_NOT_REGISTERED unless `name` is built in or registered
 * here; returns a custom strategy's function (undefined for a built-in).
 */
export function requireDistribution(name: string): DistributionFn | undefined {
  if ((BUILT_IN_DISTRIBUTIONS as readonly string[]).includes(name)) return undefined;
  const fn = registry.get(name);
  if (!fn) {
    throw new RotaError(
      "DISTRIBUTION_NOT_REGISTERED",
      `Distribution "${name}" is not registered in this process: call defineDistribution("${name}", fn) where the orchestrator runs.`,
      { details: { distribution: name } },
    );
  }
  return fn;
}

export function isDistributionRegistered(name: string): boolean {
  return (BUILT_IN_DISTRIBUTIONS as readonly string[]).includes(name) || registry.has(name);
}

/** The distribution name rules, for input checks elsewhere. */
export function validDistributionName(name: unknown): name is string {
  return typeof name === "string" && NAME.test(name);
}

/** The seed a schedule's placement draws from. */
export function seedOf(schedule: { name: string; seed: string | number | null }): string {
  return schedule.seed === null ? `name:${schedule.name}` : String(schedule.seed);
}

/**
 * The window of one cadence: the schedule's window capped at the gap to the
 * next occurrence (a window longer than the period would overlap the next
 * cadence); 0 without a window.
 */
export function cappedWindowMs(
  windowMs: number | null,
  occurrence: Date,
  next: Date | null,
): number {
  if (windowMs === null || windowMs <= 0) return 0;
  if (next === null) return windowMs;
  return Math.max(0, Math.min(windowMs, next.getTime() - occurrence.getTime()));
}

/** How targets are ranked for placement: by key (bytes), or by the hash of (seed, key). */
export type TargetOrder = "key" | "hash";

/** One cadence's placement: rank the targets by `order`, then ask `offset` of each. */
export interface CadencePlacement {
  order: TargetOrder;
  windowMs: number;
  /** The offset of the target `key` ranked `rank` (0-based) of the cadence's targets. */
  offset(key: string, rank: number): number;
}

/**
 * Places one cadence of `total` targets. Throws DISTRIBUTION_NOT_REGISTERED
 * for a custom strategy this process does not have, and
 * DISTRIBUTION_OVERFLOW when `batches` cannot fit the targets in the window.
 */
export function placeCadence(
  choice: DistributionChoice,
  cadence: {
    occurrence: Date;
    next: Date | null;
    windowMs: number | null;
    seed: string;
    total: number;
  },
): CadencePlacement {
  const windowMs = cappedWindowMs(cadence.windowMs, cadence.occurrence, cadence.next);
  if (windowMs === 0) return { order: "key", windowMs, offset: () => 0 };
  const occurrenceMs = cadence.occurrence.getTime();
  switch (choice.name) {
    case "random":
      return {
        order: "key",
        windowMs,
        offset: (key) => Math.floor(unitDraw(cadence.seed, occurrenceMs, key) * windowMs),
      };
    case "spread":
      return {
        order: "hash",
        windowMs,
        offset: (_key, rank) => Math.floor((rank * windowMs) / Math.max(1, cadence.total)),
      };
    case "batches": {
      const size = choice.batchSize ?? 1;
      const every = choice.batchEveryMs ?? 1;
      const slots = Math.ceil(windowMs / every);
      if (cadence.total > slots * size) {
        throw new RotaError(
          "DISTRIBUTION_OVERFLOW",
          `Batches of ${size} every ${every} ms fit ${slots * size} targets in the ${windowMs} ms window of the cadence at ${cadence.occurrence.toISOString()}, but the schedule has ${cadence.total}: raise the batch size or the window, or shorten the interval.`,
          { details: { size, everyMs: every, windowMs, targets: cadence.total } },
        );
      }
      return { order: "key", windowMs, offset: (_key, rank) => Math.floor(rank / size) * every };
    }
    default: {
      const fn = requireDistribution(choice.name) as DistributionFn;
      return {
        order: "key",
        windowMs,
        offset: (key) => {
          const offset = fn({ key, occurrence: cadence.occurrence, windowMs, seed: cadence.seed });
          if (typeof offset !== "number" || !(offset >= 0 && offset < windowMs)) {
            throw new RotaError(
              "DISTRIBUTION_INVALID",
              `Distribution "${choice.name}" placed target ${JSON.stringify(key)} at ${String(offset)} ms, outside the window [0, ${windowMs}).`,
              { details: { distribution: choice.name, key, offset } },
            );
          }
          return Math.floor(offset);
        },
      };
    }
  }
}

/**
 * A uniform draw in [0, 1) from (seed, occurrence, key): the first 48 bits
 * of their MD5, so the same inputs give the same draw in any process.
 */
function unitDraw(seed: string, occurrenceMs: number, key: string): number {
  const digest = md5(`${seed}\u001f${occurrenceMs}\u001f${key}`);
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * MD5 of a string's UTF-8 bytes. crypto.hash (Node 20.12 and later) skips
 * the Hash object a draw per target would otherwise make (a cadence of
 * 100,000 random offsets: about 120 ms instead of 200-300 ms).
 */
const md5: (text: string) => Buffer =
  typeof (crypto as { hash?: unknown }).hash === "function"
    ? (text) =>
        (crypto as unknown as { hash(a: string, t: string, e: "buffer"): Buffer }).hash(
          "md5",
          text,
          "buffer",
        )
    : (text) => crypto.createHash("md5").update(text).digest();

/**
 * The text the 'hash' order sorts by (SQL: md5(salt || target_key), with
 * salt = hashSalt(seed)), ties broken by key.
 */
export function hashSalt(seed: string): string {
  return `${seed}\u001f`;
}

/** Sorts keys in a cadence's placement order, as the database does (collation "C"). */
export function orderTargets(keys: readonly string[], order: TargetOrder, seed: string): string[] {
  const byKey = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  if (order === "key") return [...keys].sort(byKey);
  const salt = hashSalt(seed);
  const hashed = keys.map((key) => ({
    key,
    hash: crypto
      .createHash("md5")
      .update(salt + key)
      .digest("hex"),
  }));
  hashed.sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : byKey(a.key, b.key)));
  return hashed.map((h) => h.key);
}

/** Offsets of one cadence for a list of keys (simulate and `rota schedules plan`). */
export function placeKeys(
  choice: DistributionChoice,
  cadence: { occurrence: Date; next: Date | null; windowMs: number | null; seed: string },
  keys: readonly string[],
): { key: string; offsetMs: number }[] {
  const placement = placeCadence(choice, { ...cadence, total: keys.length });
  return orderTargets(keys, placement.order, cadence.seed).map((key, rank) => ({
    key,
    offsetMs: placement.offset(key, rank),
  }));
}
