import pg from "pg";
import { isRotaError } from "../errors.js";

/**
 * Every decision rota makes from a PostgreSQL error, in one place. The
 * server reports a failed statement with a five-character SQLSTATE: two of
 * class, three of condition (https://www.postgresql.org/docs/current/errcodes-appendix.html).
 * Each predicate is false for anything the server did not report for a
 * statement: a lost connection, a client-side timeout, a RotaError.
 */

/** The SQLSTATE of an error the server reported for a statement, else undefined. */
export function sqlstate(error: unknown): string | undefined {
  return error instanceof pg.DatabaseError ? (error.code ?? "") : undefined;
}

/**
 * The server refused the statement: it wrote nothing (its transaction, if
 * any, is aborted) and the connection is still usable. Anything else may have
 * broken the connection, which is then discarded rather than pooled.
 */
export function isStatementError(error: unknown): boolean {
  return error instanceof pg.DatabaseError;
}

/**
 * Class 22, data exception: a value the statement cannot use (out of range,
 * a bad time zone displacement, text jsonb cannot hold). The same row will be
 * refused the same way every time.
 */
export function isDataException(error: unknown): boolean {
  return sqlstate(error)?.startsWith("22") ?? false;
}

/** Class 23, integrity constraint violation: a CHECK, NOT NULL, unique or foreign key refused the row. */
export function isIntegrityViolation(error: unknown): boolean {
  return sqlstate(error)?.startsWith("23") ?? false;
}

/**
 * Class P0, PL/pgSQL error: a function or trigger raised (RAISE EXCEPTION is
 * P0001; a trigger that refuses rows on purpose lands here).
 */
export function isRaisedException(error: unknown): boolean {
  return sqlstate(error)?.startsWith("P0") ?? false;
}

/**
 * A statement error that trying again cannot cure: data (22), a constraint
 * (23), or a function or trigger that raised (P0). Lock timeouts,
 * serialization failures, shutdowns and the like are worth another try.
 */
export function isRefusal(error: unknown): boolean {
  return isDataException(error) || isIntegrityViolation(error) || isRaisedException(error);
}

/** 23505, unique violation; with `constraint`, only on that constraint or unique index. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  if (sqlstate(error) !== "23505") return false;
  return constraint === undefined || (error as pg.DatabaseError).constraint === constraint;
}

/** 40P01, deadlock detected: the server broke a lock cycle by failing this statement. */
export function isDeadlock(error: unknown): boolean {
  return sqlstate(error) === "40P01";
}

/**
 * A claim that lost a race with another claim: both started a job with the
 * same concurrency key (the unique index jobs_running_concurrency), or, with
 * two keys each, they waited on each other (a deadlock the server broke).
 * Claiming again sees the winner's jobs running.
 */
export function isConcurrencyRace(error: unknown): boolean {
  return isUniqueViolation(error, "jobs_running_concurrency") || isDeadlock(error);
}

/**
 * The statement failed for want of a working connection, not because the
 * server refused it: the connection was refused, cut or timed out (no
 * SQLSTATE: the error is the driver's or the network's), it broke (class
 * 08), or the server is shutting down, was told to end this backend
 * (pg_terminate_backend: 57P01) or is still starting (57P02, 57P03). Of
 * rota's own errors, DATABASE_UNREACHABLE and QUERY_TIMEOUT count (a
 * statement that got no answer in time: most often the connection went
 * silent).
 */
export function isConnectionLoss(error: unknown): boolean {
  if (isRotaError(error))
    return error.code === "DATABASE_UNREACHABLE" || error.code === "QUERY_TIMEOUT";
  const state = sqlstate(error);
  if (state === undefined) return true;
  return state.startsWith("08") || state === "57P01" || state === "57P02" || state === "57P03";
}
