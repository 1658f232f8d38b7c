// rota/kysely: rota's calls that take `client`, inside a Kysely transaction
// (PostgresDialect over pg), against the real database.
import {
  CamelCasePlugin,
  type Generated,
  Kysely,
  type KyselyPlugin,
  PostgresDialect,
} from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { fromKysely } from "../../src/adapters/kysely.js";
import { ormConformance } from "./orm-conformance.js";

interface Tables {
  orders: { id: Generated<number>; note: string };
}

function kysely(url: string, plugins: KyselyPlugin[] = []) {
  return new Kysely<Tables>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }),
    plugins,
  });
}

const { schema } = ormConformance("Kysely", async ({ url, schema }) => {
  const db = kysely(url);
  return {
    transaction: (fn) =>
      db.transaction().execute((trx) =>
        fn({
          client: fromKysely(trx),
          insertOrder: async (note) => {
            await trx.withSchema(schema).insertInto("orders").values({ note }).execute();
          },
        }),
      ),
    close: () => db.destroy(),
  };
});

describe("Kysely's plugins", () => {
  it("do not touch rota's statements: a CamelCasePlugin leaves previous_state to rota", async () => {
    const t = schema();
    const db = kysely(t.url, [new CamelCasePlugin()]);
    try {
      const { id } = await t.rota.enqueue("kysely.camel", {});
      const cancelled = await db
        .transaction()
        .execute((trx) => t.rota.cancel(id, { client: fromKysely(trx) }));
      expect(cancelled).toEqual({ id, state: "cancelled", previousState: "available" });
      // The ORM's own queries still go through its plugins.
      const camel = await db.transaction().execute(async (trx) => {
        const rows = await trx
          .withSchema(t.schema)
          .selectFrom("orders")
          .select((eb) => eb.fn.countAll().as("order_count"))
          .execute();
        return Object.keys(rows[0] ?? {});
      });
      expect(camel).toEqual(["orderCount"]);
    } finally {
      await db.destroy();
    }
  });
});
