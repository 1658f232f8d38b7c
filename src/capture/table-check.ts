import type { TableRow } from "../db/queries/captures.js";
import { RotaError } from "../errors.js";
import type { CaptureRequest } from "./capture-input.js";

/** A capture's table, columns and key as the catalog confirmed them. */
export interface CheckedTable {
  tableSchema: string;
  tableName: string;
  /** null: every column. */
  columns: string[] | null;
  key: string[];
}

/**
 * Checks a capture against what the catalog says of its table (Inspect):
 * the table exists and can carry transition tables, the columns exist, and
 * the key identifies a row. A key must be NOT NULL and unique because the
 * trigger joins a statement's old and new rows on it, and coalesces one
 * queued job per key: two rows sharing a key would be compared with each
 * other and folded into one job.
 */
export function checkTable(request: CaptureRequest, table: TableRow | undefined): CheckedTable {
  const { name } = request;
  if (table === undefined) {
    throw invalid(
      "table",
      `Capture "${name}": no table ${JSON.stringify(request.table)}. Name it as in SQL, schema-qualified ("public.projects"), quoting mixed-case names ('"Projects"').`,
      request.table,
    );
  }
  const qualified = `${table.table_schema}.${table.table_name}`;
  if (table.kind !== "r" && table.kind !== "p") {
    throw invalid(
      "table",
      `Capture "${name}": ${qualified} is not a table (a view, a foreign table or a sequence cannot carry the statement triggers capture installs).`,
      request.table,
    );
  }
  const known = new Map(table.columns.map((c) => [c.name, c]));
  const unknown = (list: string[]) => list.filter((c) => !known.has(c));
  const suggest = (column: string) => {
    const near = table.columns.find((c) => c.name.toLowerCase() === column.toLowerCase());
    return near ? ` (did you mean "${near.name}"?)` : "";
  };
  if (request.columns) {
    const missing = unknown(request.columns);
    if (missing.length > 0) {
      throw invalid(
        "columns",
        `Capture "${name}": ${qualified} has no column ${missing.map((c) => `"${c}"${suggest(c)}`).join(", ")}.`,
        request.columns,
      );
    }
  }
  const key = request.key ?? table.primary_key;
  if (key.length === 0) {
    throw invalid(
      "key",
      `Capture "${name}": ${qualified} has no primary key; give "key": NOT NULL columns that identify a row (a unique index's).`,
      null,
    );
  }
  const missingKey = unknown(key);
  if (missingKey.length > 0) {
    throw invalid(
      "key",
      `Capture "${name}": ${qualified} has no column ${missingKey.map((c) => `"${c}"${suggest(c)}`).join(", ")} for the key.`,
      key,
    );
  }
  const nullable = key.filter((c) => !known.get(c)?.notNull);
  if (nullable.length > 0) {
    throw invalid(
      "key",
      `Capture "${name}": key column ${nullable.map((c) => `"${c}"`).join(", ")} of ${qualified} may be NULL; a key must identify a row (NOT NULL and unique).`,
      key,
    );
  }
  const unique = table.unique_keys.some((columns) => columns.every((c) => key.includes(c)));
  if (!unique) {
    throw invalid(
      "key",
      `Capture "${name}": key (${key.join(", ")}) does not identify a row of ${qualified}: no primary key or unique index (immediate, not partial) is on those columns.`,
      key,
    );
  }
  return {
    tableSchema: table.table_schema,
    tableName: table.table_name,
    columns: request.columns,
    key,
  };
}

function invalid(field: string, message: string, value: unknown): RotaError {
  return new RotaError("INVALID_CAPTURE", message, { details: { field, value } });
}
