import { type SQL, type SQLChunk, sql } from "drizzle-orm";
import type { Executor } from "../db/database.js";
import { fromPgResult } from "./pg-rows.js";

/**
 * rota/drizzle: rota's calls that take `client` (enqueue, enqueueMany,
 * batches.enqueue, cancel, capture.add and remove) run inside a Drizzle
 * transaction (drizzle-orm/node-postgres), so the job exists if and only if
 * it commits:
 *
 *   await db.transaction(async (tx) => {
 *     await tx.insert(orders).values(order);
 *     await rota.enqueue("email.receipt", { order: order.id }, { client: fromDrizzle(tx) });
 *   });
 */

/** What the adapter needs of a Drizzle database or transaction. */
export interface DrizzleLike {
  execute(query: SQL): PromiseLike<unknown>;
}

/**
 * An executor over `tx`, a Drizzle transaction (or database: then each of
 * rota's statements runs on its own), through `execute`. Drizzle keeps
 * timestamps as text on node-postgres; pg-rows.ts turns them back into
 * Dates.
 */
export function fromDrizzle(tx: DrizzleLike): Executor {
  return {
    async query(config) {
      return fromPgResult(
        "Drizzle",
        await tx.execute(drizzleQuery(config.text, config.values ?? [])),
      );
    },
  };
}

/**
 * rota's statement as Drizzle SQL. Drizzle writes each parameter's
 * placeholder itself, numbering them $1, $2, … in the order they appear,
 * and has no way to name one twice, while rota's text already holds its
 * `$n` (some twice, typed by their first use). So the text goes as it is,
 * and the parameters follow it in a comment, in order, where Drizzle's
 * numbering gives each the number rota's text uses: PostgreSQL runs rota's
 * statement unchanged, with its values.
 */
function drizzleQuery(text: string, values: readonly unknown[]): SQL {
  if (values.length === 0) return sql.raw(text);
  const chunks: SQLChunk[] = [sql.raw(`${text}\n-- rota's parameters:`)];
  for (const value of values) {
    // sql.param keeps an array one parameter (a text[]), where the sql tag
    // would spread it into a list.
    chunks.push(sql.raw(" "), sql.param(value));
  }
  return sql.join(chunks);
}
