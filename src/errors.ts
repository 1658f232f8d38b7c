/**
 * Every failure rota reports on purpose is a RotaError with a stable `code`.
 * Callers branch on `code`, never on message text; messages are for people and
 * say what to do next.
 */
export const errorCodes = {
  // configuration and input
  INVALID_OPTION: "an option has a value rota cannot use",
  INVALID_SCHEMA_NAME: "the schema name is not a plain SQL identifier",
  INVALID_DATABASE_URL: "the database URL cannot be parsed as a postgres:// URL",
  INVALID_QUEUE_NAME: "the queue name is empty, too long or has unsupported characters",
  INVALID_TASK_NAME: "the task name is empty, too long or has unsupported characters",
  UNKNOWN_TASK: "no task with that name is registered",
  INVALID_PAYLOAD: "the payload is not JSON-serializable or fails the task's schema",
  PAYLOAD_TOO_LARGE: "the payload is larger than the configured limit",
  INVALID_RUN_AT: "the run time or delay is invalid",
  INVALID_MAX_ATTEMPTS: "max attempts must be a whole number of at least 1",
  INVALID_PRIORITY: "priority must be a whole number",
  TELEMETRY_UNAVAILABLE:
    "telemetry was asked for but @opentelemetry/api cannot be loaded (it is an optional peer dependency: install it)",
  // schedules
  INVALID_SCHEDULE_NAME: "the schedule name is empty, too long or has unsupported characters",
  INVALID_SCHEDULE_SPEC: "the schedule needs exactly one of cron or every",
  INVALID_CRON: "the cron expression cannot be parsed",
  INVALID_INTERVAL: "the every interval or its anchor cannot be used",
  INVALID_TIMEZONE: "the timezone is not an IANA timezone name",
  INVALID_CRONTAB: "a crontab line cannot be turned into a schedule",
  INVALID_IMPORT:
    "a schedule read from another scheduler cannot be turned into a rota schedule (nothing was imported)",
  IMPORT_SOURCE_NOT_FOUND:
    "the other scheduler's schedules are not where the import looked (its schema or table is missing)",
  SCHEDULE_NOT_FOUND: "no schedule with that name exists",
  EXECUTION_NOT_FOUND: "no planned execution of that schedule matches",
  INVALID_TARGET: "a schedule target's key or payload is not valid",
  TARGET_NOT_FOUND: "the schedule has no enabled target with that key",
  INVALID_TARGET_SOURCE: "a schedule's target source is not a query rota can run",
  DISTRIBUTION_NOT_REGISTERED:
    "the schedule's distribution strategy is not registered in this process",
  DISTRIBUTION_OVERFLOW: "the distribution cannot fit the schedule's targets in its window",
  DISTRIBUTION_INVALID: "a custom distribution returned an offset outside the window",
  SIMULATION_TOO_LARGE: "a simulation's range or number of executions is past its limit",
  // database and schema
  DATABASE_UNREACHABLE: "rota cannot connect to PostgreSQL",
  QUERY_TIMEOUT:
    "a statement of a worker or orchestrator got no answer within its queryTimeoutMs (a connection gone silent, or a statement that slow); its connection was dropped",
  SCHEMA_NOT_MIGRATED: "the rota schema is missing or behind the code",
  SCHEMA_TOO_NEW: "the database schema is newer than this version of rota",
  MIGRATION_FAILED: "a migration failed and was rolled back",
  EMBEDDED_POSTGRES_FAILED: "the embedded PostgreSQL could not be started",
  ORM_RESULT_UNREADABLE:
    "an ORM adapter (rota/kysely, rota/drizzle, rota/knex, rota/prisma) got a result it cannot read as rows",
  // jobs
  JOB_NOT_FOUND: "no job with that id exists",
  JOB_NOT_RETRYABLE:
    "the job is not failed or cancelled, or another queued job holds its unique key (nothing was changed)",
  SWEEP_NOT_FOUND: "no sweep with that name is recorded",
  BATCH_NOT_FOUND: "no batch with that id exists",
  SWEEP_ROLLED_BACK: "a sweep instance's transaction ended rolled back",
  // change capture
  INVALID_CAPTURE:
    "a capture's name, table, columns, key or events cannot be used (nothing was installed)",
  CAPTURE_NOT_FOUND: "no capture with that name is recorded",
  JOB_CANCELLED: "the job was cancelled while it ran",
  JOB_TIMEOUT: "the job ran longer than its timeout",
  BATCH_RESULT_INVALID:
    "a batch handler returned something other than nothing or one outcome per job (every job of the call fails)",
  LEASE_LOST: "the worker lost the job's lease (it was rescued and may run elsewhere)",
  OUTCOME_NOT_WRITTEN:
    "the database refused to record a job's outcome; the job is left to be rescued",
  OUTCOMES_NOT_WRITTEN:
    "a stopping worker gave up writing outcomes; those jobs are rescued when their leases expire",
  // dashboard
  DASHBOARD_EXPOSED: "the dashboard would listen beyond loopback without a configured token",
  // lifecycle
  SHUTTING_DOWN: "the component is stopping and accepts no new work",
} as const;

export type RotaErrorCode = keyof typeof errorCodes;

export interface RotaErrorOptions {
  cause?: unknown;
  /** Structured facts about the failure (the field, the value, the limit). */
  details?: Record<string, unknown>;
}

export class RotaError extends Error {
  override readonly name = "RotaError";
  readonly code: RotaErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: RotaErrorCode, message: string, options: RotaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

export function isRotaError(error: unknown, code?: RotaErrorCode): error is RotaError {
  return error instanceof RotaError && (code === undefined || error.code === code);
}

/**
 * The same failure, its message prefixed with where it happened (a file's
 * entry, a schedule), its code kept so callers still branch on it.
 */
export function rotaErrorIn(
  where: string,
  error: RotaError,
  details: Record<string, unknown>,
): RotaError {
  return new RotaError(error.code, `${where}: ${error.message}`, {
    cause: error,
    details: { ...error.details, ...details },
  });
}

/** A readable one-line description of anything thrown, for logs and stored errors. */
export function describeThrown(thrown: unknown): { message: string; stack: string | null } {
  if (thrown instanceof Error) {
    return { message: thrown.message || thrown.name, stack: thrown.stack ?? null };
  }
  if (typeof thrown === "string") return { message: thrown, stack: null };
  try {
    const json = JSON.stringify(thrown);
    return { message: `non-Error thrown: ${json ?? String(thrown)}`, stack: null };
  } catch {
    try {
      return { message: `non-Error thrown: ${String(thrown)}`, stack: null };
    } catch {
      // A value whose toString throws too (or an object without one).
      return {
        message: `non-Error thrown: ${Object.prototype.toString.call(thrown)}`,
        stack: null,
      };
    }
  }
}
