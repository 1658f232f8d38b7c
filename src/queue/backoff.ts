import { RotaError } from "../errors.js";

/**
 * How long a failed job waits before its next attempt. Stored with the job as
 * JSON, so any worker computes the same policy.
 *
 * exponential: base * 2^(attempt-1), capped at max, then "full jitter" to a
 * random point in [delay/2, delay] so retries of jobs that failed together
 * (a dependency went down) spread out instead of stampeding back at once.
 */
export type BackoffPolicy =
  | { kind: "exponential"; baseMs?: number; maxMs?: number; jitter?: boolean }
  | { kind: "fixed"; delayMs: number };

/** A task-level override: the delay in ms before attempt `attempt + 1`. */
export type BackoffFunction = (attempt: number, error: unknown) => number;

export const DEFAULT_BACKOFF = {
  kind: "exponential",
  baseMs: 1_000,
  maxMs: 3_600_000,
  jitter: true,
} as const;

export function validateBackoff(value: unknown): BackoffPolicy {
  const bad = (why: string) =>
    new RotaError(
      "INVALID_OPTION",
      `Option backoff ${why}; use { kind: "exponential", baseMs?, maxMs?, jitter? } or { kind: "fixed", delayMs }.`,
      { details: { field: "backoff", value } },
    );
  if (typeof value !== "object" || value === null) throw bad("must be an object");
  const policy = value as Record<string, unknown>;
  const nonNegative = (key: string) => {
    const v = policy[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v < 0)) {
      throw bad(`.${key} must be a number of milliseconds >= 0`);
    }
  };
  if (policy.kind === "exponential") {
    nonNegative("baseMs");
    nonNegative("maxMs");
    if (policy.jitter !== undefined && typeof policy.jitter !== "boolean") {
      throw bad(".jitter must be a boolean");
    }
    return value as BackoffPolicy;
  }
  if (policy.kind === "fixed") {
    if (policy.delayMs === undefined) throw bad(".delayMs is required");
    nonNegative("delayMs");
    return value as BackoffPolicy;
  }
  throw bad(`.kind must be "exponential" or "fixed", got ${JSON.stringify(policy.kind)}`);
}

/** The delay before the attempt after `attempt` (1-based) under `policy`. */
export function backoffDelay(
  policy: BackoffPolicy | null | undefined,
  attempt: number,
  random: () => number = Math.random,
): number {
  const effective = policy ?? DEFAULT_BACKOFF;
  if (effective.kind === "fixed") return effective.delayMs;
  const base = effective.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const max = effective.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const exponent = Math.min(Math.max(attempt - 1, 0), 52);
  const delay = Math.min(max, base * 2 ** exponent);
  if (effective.jitter === false) return Math.round(delay);
  return Math.round(delay / 2 + (random() * delay) / 2);
}
