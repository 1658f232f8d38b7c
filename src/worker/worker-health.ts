import type { Reachability } from "../db/database.js";
import { describeThrown, isRotaError } from "../errors.js";

/** A failure as health reports show it: what it said, its code, when. */
export interface HealthFailure {
  message: string;
  /** A RotaError's code, PostgreSQL's SQLSTATE, or the system's (ECONNREFUSED); null when there is none. */
  code: string | null;
  at: Date;
}

/**
 * What `worker.health()` returns: the worker's own view, read without a
 * statement, so it answers while the database is away.
 */
export interface WorkerHealth {
  /** Running, its database reachable, LISTEN up (when it listens) and its last claim returned. */
  ok: boolean;
  state: "new" | "starting" | "running" | "stopping" | "stopped";
  /**
   * Whether the worker's last statement (claim, heartbeat, outcome, report)
   * got an answer from PostgreSQL: true (rows or an error of the server's),
   * false (no connection: refused, cut, timed out, the server shutting
   * down), null (none ran yet).
   */
  databaseReachable: boolean | null;
  /** The LISTEN connection is up; null when the worker does not listen. */
  listening: boolean | null;
  /** Why LISTEN was last lost or could not connect (null: never). */
  lastListenError: HealthFailure | null;
  /** LISTEN connection attempts so far, the first included (0 when it does not listen). */
  listenAttempts: number;
  /** When a claim statement last returned, with jobs or without. */
  lastClaimAt: Date | null;
  /** The last claim statement that failed (it may be older than lastClaimAt). */
  lastClaimError: HealthFailure | null;
  /** Claim statements failed in a row (0 once one returns). */
  claimFailures: number;
  /** The last error the worker reported (its worker:error event), with what it was doing. */
  lastError: (HealthFailure & { during: string }) | null;
  /** Jobs held: claimed and buffered, running, or waiting for their outcome to be written. */
  held: number;
}

export function failureOf(error: unknown, at: Date): HealthFailure {
  let code: string | null = null;
  if (isRotaError(error)) code = error.code;
  else if (error instanceof Error && "code" in error && typeof error.code === "string")
    code = error.code;
  return { message: describeThrown(error).message, code, at };
}

/** Whichever of the connections' reports is the more recent decides (null: neither ran a statement). */
export function latestReach(...reports: Reachability[]): boolean | null {
  let latest: { at: number; reachable: boolean } | null = null;
  for (const report of reports) {
    const answer = report.lastAnswerAt?.getTime() ?? -1;
    const loss = report.lastLoss?.at.getTime() ?? -1;
    if (answer < 0 && loss < 0) continue;
    const entry = answer >= loss ? { at: answer, reachable: true } : { at: loss, reachable: false };
    if (latest === null || entry.at > latest.at) latest = entry;
  }
  return latest?.reachable ?? null;
}
