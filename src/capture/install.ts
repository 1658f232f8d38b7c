import type { Database, Executor } from "../db/database.js";
import { captureQueries } from "../db/queries/captures.js";
import { sqlstate } from "../db/sqlstate.js";
import { RotaError } from "../errors.js";
import type { CaptureEvent } from "./capture-input.js";
import {
  type FunctionSpec,
  functionFragments,
  functionName,
  triggerFragments,
  triggerName,
} from "./trigger-sql.js";

/** A capture as its triggers are installed: checked against the catalog first. */
export interface InstallSpec extends FunctionSpec {
  tableSchema: string;
  tableName: string;
  events: readonly CaptureEvent[];
}

/**
 * Installs a capture's function and its triggers, on `client`, inside the
 * caller's transaction. Any old ones go first: dropping the old function
 * drops every trigger calling it (the events may have changed), and the new
 * ones replace them before the transaction commits, so no change to the
 * table goes uncaptured in between.
 */
export async function installCapture(
  db: Database,
  client: Executor,
  spec: InstallSpec,
): Promise<void> {
  const q = captureQueries(db.schema);
  const fn = { function: functionName(db.schema, spec.name) };
  await db.runSpliced(q.DropFunction, {}, fn, client);
  await db.runSpliced(q.CreateFunction, {}, functionFragments(db.schema, spec), client);
  await db.runSpliced(q.RevokeFunction, {}, fn, client);
  for (const event of spec.events) {
    await db
      .runSpliced(q.CreateTrigger, {}, triggerFragments(db.schema, spec, event), client)
      .catch((cause: unknown) => {
        // duplicate_object: a trigger of that name that is not this
        // capture's (another rota schema's capture of the same name).
        if (sqlstate(cause) !== "42710") throw cause;
        throw new RotaError(
          "INVALID_CAPTURE",
          `Capture "${spec.name}": ${spec.tableSchema}.${spec.tableName} already has a trigger named ${triggerName(spec.name, event)} that is not this capture's (another rota schema's?); choose another name.`,
          { cause, details: { field: "name", value: spec.name } },
        );
      });
  }
}

/**
 * Drops capture `name`'s function and, by their dependency on it, every
 * trigger calling it, wherever it is and whatever it is now named; returns
 * those triggers (`schema.table.trigger`).
 */
export async function uninstallCapture(
  db: Database,
  client: Executor,
  name: string,
): Promise<string[]> {
  const q = captureQueries(db.schema);
  const triggers = await db.run(q.Triggers, { name }, client);
  await db.runSpliced(q.DropFunction, {}, { function: functionName(db.schema, name) }, client);
  return triggers.rows.map((t) => `${t.table_schema}.${t.table_name}.${t.name}`);
}
