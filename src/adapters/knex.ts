import type { Knex } from "knex";
import type { Executor } from "../db/database.js";
import { fromPgResult } from "./pg-rows.js";

/**
 * rota/knex: rota's calls that take `client` (enqueue, enqueueMany,
 * batches.enqueue, cancel, capture.add and remove) run inside a Knex
 * transaction (client "pg"), so the job exists if and only if it commits:
 *
 *   await knex.transaction(async (trx) => {
 *     await trx("orders").insert(order);
 *     await rota.enqueue("email.receipt", { order: order.id }, { client: fromKnex(trx) });
 *   });
 */

/** What the adapter needs of a Knex instance or transaction. */
export interface KnexLike {
  raw(sql: string, bindings: readonly Knex.RawBinding[]): PromiseLike<unknown>;
}

/** An executor over `trx`, a Knex transaction (or instance: then each of rota's statements runs on its own), through `raw`. */
export function fromKnex(trx: KnexLike): Executor {
  return {
    async query(config) {
      const values = config.values ?? [];
      const sql = knexText(config.text, values.length);
      return fromPgResult("Knex", await trx.raw(sql, values as Knex.RawBinding[]));
    },
  };
}

/**
 * rota's statement as Knex's raw takes it. Knex reads every `?` as a
 * parameter (in a string literal too) and turns `\?` back into `?`; on pg
 * it numbers them $1, $2, … in order and leaves `$n` alone. So each `?`
 * of rota's own text (jsonb's `?`, `?|`, `?&`, a `?` in a literal) is
 * escaped, rota's `$n` stay as written (some used twice, typed by their
 * first use), and one `?` per value follows in a comment, in order, where
 * Knex's numbering gives each the number rota's text uses.
 */
function knexText(text: string, count: number): string {
  const escaped = text.replace(/(\\*)\?/g, (_match, backslashes: string) => {
    // Knex drops every backslash before a `?`, so a backslash and a `?`
    // (E'a\?') cannot be sent through it. None of rota's statements has
    // one; this says so if one ever does.
    if (backslashes !== "") {
      throw new Error(`Knex cannot send a backslash before "?": ${text}`);
    }
    return "\\?";
  });
  if (count === 0) return escaped;
  return `${escaped}\n-- rota's parameters: ${Array.from({ length: count }, () => "?").join(" ")}`;
}
