/**
 * The chaos run's own failures (not what it found: those are violations in
 * its report), each with a stable code, as rota's RotaError has.
 */
export const chaosErrorCodes = {
  CHAOS_BAD_OPTION: "a command-line option has a value the chaos run cannot use",
  CHAOS_SERVER_FAILED: "the chaos run's own PostgreSQL did not start",
  CHAOS_PROCESS_FAILED: "a rota process the chaos run started did not come up",
  CHAOS_SETUP_FAILED: "the schedules, limits, capture or side tables could not be set up",
  CHAOS_FAILED: "the chaos run itself failed (not a check: a bug in the run, or the machine)",
} as const;

export type ChaosErrorCode = keyof typeof chaosErrorCodes;

export class ChaosError extends Error {
  constructor(
    readonly code: ChaosErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ChaosError";
  }
}
