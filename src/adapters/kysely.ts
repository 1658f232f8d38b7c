import { CompiledQuery, type QueryResult } from "kysely";
import type { Executor } from "../db/database.js";
import { pgResult } from "./pg-rows.js";

/**
 * rota/kysely: rota's calls that take `client` (enqueue, enqueueMany,
 * batches.enqueue, cancel, capture.add and remove) run inside a Kysely
 * transaction, so the job exists if and only if it commits:
 *
 *   await db.transaction().execute(async (trx) => {
 *     await trx.insertInto("orders").values(order).execute();
 *     await rota.enqueue("email.receipt", { order: order.id }, { client: fromKysely(trx) });
 *   });
 */

/** What the adapter needs of a Kysely instance or transaction. */
export interface KyselyLike {
  withoutPlugins(): {
    executeQuery<R>(query: CompiledQuery<R>): Promise<QueryResult<R>>;
  };
}

/**
 * An executor over `db`, a Kysely transaction (or instance: then each of
 * rota's statements runs on its own). rota's statement goes as it is (its
 * text and `$n` parameters) through `executeQuery`, on the transaction's
 * connection. Without the instance's plugins: a CamelCasePlugin would
 * rename the columns rota reads (`previous_state` to `previousState`).
 */
export function fromKysely(db: KyselyLike): Executor {
  const plain = db.withoutPlugins();
  return {
    async query(config) {
      const result = await plain.executeQuery(CompiledQuery.raw(config.text, config.values ?? []));
      return pgResult("Kysely", {
        rows: result.rows,
        // Kysely reports a count for INSERT, UPDATE, DELETE and MERGE only;
        // for the rest, as pg, the rows returned.
        rowCount:
          result.numAffectedRows === undefined
            ? result.rows.length
            : Number(result.numAffectedRows),
      });
    },
  };
}
