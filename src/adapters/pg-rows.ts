import pg from "pg";
import type { ExecutorResult } from "../db/database.js";
import { RotaError } from "../errors.js";

/**
 * What an ORM hands back, made to look like node-postgres's result: rota's
 * code reads rows as pg returns them by default (ids and other int8 as
 * strings, timestamptz as Date, int4 as number, jsonb parsed), and every
 * adapter (kysely.ts, drizzle.ts, knex.ts, prisma.ts) passes its driver's
 * result through here, so the caller gets from rota, through any of them,
 * exactly what it gets through a pg client.
 *
 * Two differences are mended:
 * - Drizzle on node-postgres keeps dates, timestamps, intervals and their
 *   arrays (and numeric[]) as PostgreSQL's text, for its own column mappers.
 *   Its result still says each column's type, so such a string is parsed with
 *   pg's own parser for that type: the very value pg would have returned.
 * - Prisma returns int8 as BigInt; pg returns its text.
 */

/** A column as node-postgres describes it in a result's `fields`. */
interface DriverField {
  name: string;
  dataTypeID: number;
}

/** A driver's result, as an adapter has it. */
export interface DriverResult {
  rows: unknown;
  rowCount: number | null;
  /** The columns' types, when the driver reports them (node-postgres does; Prisma does not). */
  fields?: readonly DriverField[] | undefined;
}

/**
 * pgResult of what an ORM over node-postgres resolves a raw statement to:
 * pg's own result (Drizzle's execute, Knex's raw), with its rows, rowCount
 * and its columns' types.
 */
export function fromPgResult<R>(
  orm: string,
  result: unknown,
): ExecutorResult<R & pg.QueryResultRow> {
  const pgLike = result as Partial<DriverResult> | null | undefined;
  return pgResult(orm, {
    rows: pgLike?.rows,
    rowCount: pgLike?.rowCount ?? null,
    fields: pgLike?.fields,
  });
}

/**
 * Types node-postgres parses into something other than a string (date 1082,
 * timestamp 1114, timestamptz 1184, interval 1186, their arrays 1182, 1115,
 * 1185, 1187, and numeric[] 1231). In such a column a string can only be
 * text a driver left unparsed, so parsing it again cannot parse anything
 * twice; a jsonb string, for one, is never touched.
 */
const PARSED_BY_PG = new Set([1082, 1114, 1184, 1186, 1182, 1115, 1185, 1187, 1231]);

/** `result` with node-postgres's values; `orm` names the adapter in an error. */
export function pgResult<R>(
  orm: string,
  result: DriverResult,
): ExecutorResult<R & pg.QueryResultRow> {
  if (!Array.isArray(result.rows)) {
    // A hook of the ORM's (Knex's postProcessResponse, say) that reshaped
    // the driver's result: reading it anyway would hand rota wrong values.
    throw new RotaError(
      "ORM_RESULT_UNREADABLE",
      `rota's ${orm} adapter got a result without a rows array from ${orm}; a hook that reshapes results (such as Knex's postProcessResponse) must leave raw query results as the driver returns them.`,
      { details: { orm } },
    );
  }
  const parsers: [string, (text: string) => unknown][] = [];
  for (const field of result.fields ?? []) {
    if (PARSED_BY_PG.has(field.dataTypeID)) {
      parsers.push([field.name, pg.types.getTypeParser(field.dataTypeID, "text")]);
    }
  }
  const rows = (result.rows as Record<string, unknown>[]).map((row) => {
    const converted: Record<string, unknown> = {};
    for (const key of Object.keys(row)) converted[key] = pgValue(row[key]);
    for (const [name, parse] of parsers) {
      const value = converted[name];
      if (typeof value === "string") converted[name] = parse(value);
    }
    return converted;
  });
  return { rows: rows as (R & pg.QueryResultRow)[], rowCount: result.rowCount };
}

/** A BigInt as its text, in arrays too (int8[]); anything else as it is. JSON never holds a BigInt. */
function pgValue(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value) && value.some((v) => typeof v === "bigint" || Array.isArray(v))) {
    return value.map(pgValue);
  }
  return value;
}
