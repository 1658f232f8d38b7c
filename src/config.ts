import { RotaError } from "./errors.js";

export const DEFAULT_SCHEMA = "rota";

/**
 * Schema names become part of SQL text (a schema cannot be a bind parameter),
 * so only plain lower-case identifiers are accepted and they are always quoted
 * on the way in. Anything else is refused before it reaches the database.
 */
// At most 50 characters, so that NOTIFY channels named after the schema stay
// within PostgreSQL's 63-byte identifier limit.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,49}$/;

export function validateSchemaName(schema: unknown): string {
  if (typeof schema !== "string" || !SCHEMA_NAME.test(schema)) {
    throw new RotaError(
      "INVALID_SCHEMA_NAME",
      `Invalid schema name ${JSON.stringify(schema)}: use 1-50 characters of lower-case letters, digits and underscores, not starting with a digit (for example "rota" or "rota_tenant_1").`,
      { details: { field: "schema", value: schema } },
    );
  }
  if (schema.startsWith("pg_")) {
    throw new RotaError(
      "INVALID_SCHEMA_NAME",
      `Invalid schema name "${schema}": names starting with "pg_" are reserved by PostgreSQL.`,
      { details: { field: "schema", value: schema } },
    );
  }
  return schema;
}

/**
 * Checks that a connection string is a postgres:// URL and says which part is
 * wrong if not; `field` names the option it came from.
 */
export function validateDatabaseUrl(url: unknown, field = "databaseUrl"): string {
  const what = field === "databaseUrl" ? "database URL" : `database URL in ${field}`;
  const hint = "expected a URL like postgres://user:password@host:5432/database (or postgresql://)";
  if (typeof url !== "string" || url.trim() === "") {
    throw new RotaError("INVALID_DATABASE_URL", `Invalid ${what}: it is empty; ${hint}.`, {
      details: { field },
    });
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new RotaError(
      "INVALID_DATABASE_URL",
      `Invalid ${what} ${JSON.stringify(redactUrl(url))}: it is not a URL; ${hint}.`,
      { cause, details: { field } },
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new RotaError(
      "INVALID_DATABASE_URL",
      `Invalid ${what}: the scheme is "${parsed.protocol}"; ${hint}.`,
      { details: { field, protocol: parsed.protocol } },
    );
  }
  if (parsed.port !== "" && !/^\d+$/.test(parsed.port)) {
    throw new RotaError("INVALID_DATABASE_URL", `Invalid ${what}: bad port; ${hint}.`, {
      details: { field },
    });
  }
  return url;
}

/** The URL without its password, safe to print. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

/** A whole number of milliseconds, at least `min`, for duration options. */
export function validateMillis(field: string, value: unknown, min = 0): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RotaError(
      "INVALID_OPTION",
      `Option ${field} must be a whole number of milliseconds >= ${min}, got ${JSON.stringify(value)}.`,
      { details: { field, value } },
    );
  }
  return value;
}

/** A whole number from `min` to `max` (a limit, a count); the message names `field`. */
export function wholeNumber(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new RotaError(
      "INVALID_OPTION",
      `${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value) ?? String(value)}.`,
      { details: { field, value } },
    );
  }
  return value;
}

/** A whole number at least `min`, for counts such as concurrency. */
export function validateCount(field: string, value: unknown, min = 1): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RotaError(
      "INVALID_OPTION",
      `Option ${field} must be a whole number >= ${min}, got ${JSON.stringify(value)}.`,
      { details: { field, value } },
    );
  }
  return value;
}
