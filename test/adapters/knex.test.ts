// rota/knex: rota's calls that take `client`, inside a Knex transaction
// (client "pg"), against the real database. Knex takes every `?` for a
// parameter: the conformance suite's payloads and probe statement carry
// jsonb's ? operators and literal ?s.
import knex from "knex";
import { describe, expect, it } from "vitest";
import { fromKnex } from "../../src/adapters/knex.js";
import { isRotaError } from "../../src/errors.js";
import { ormConformance } from "./orm-conformance.js";

const { schema } = ormConformance("Knex", async ({ url, schema }) => {
  const db = knex({ client: "pg", connection: url, pool: { min: 0, max: 2 } });
  return {
    transaction: (fn) =>
      db.transaction((trx) =>
        fn({
          client: fromKnex(trx),
          insertOrder: async (note) => {
            await trx.withSchema(schema).table("orders").insert({ note });
          },
        }),
      ),
    close: () => db.destroy(),
  };
});

describe("Knex's text", () => {
  it("cannot carry a backslash before a ? (Knex drops it): refused, not sent altered", async () => {
    const t = schema();
    const db = knex({ client: "pg", connection: t.url, pool: { min: 0, max: 1 } });
    try {
      await expect(
        db.transaction((trx) => fromKnex(trx).query({ text: "select E'a\\?' as text" })),
      ).rejects.toThrow(/backslash before "\?"/);
      // The same statement without the backslash goes through, its ? as written.
      const plain = await db.transaction((trx) =>
        fromKnex(trx).query({ text: "select 'a?' as text, $1::text as p", values: ["?"] }),
      );
      expect(plain.rows).toEqual([{ text: "a?", p: "?" }]);
    } finally {
      await db.destroy();
    }
  });
});

describe("Knex's postProcessResponse", () => {
  it("that reshapes raw results is refused with ORM_RESULT_UNREADABLE, not read wrongly", async () => {
    const t = schema();
    const db = knex({
      client: "pg",
      connection: t.url,
      pool: { min: 0, max: 1 },
      // A hook some applications have: rows only, for the builder's results and raw ones alike.
      postProcessResponse: (result: { rows?: unknown }) => result?.rows ?? result,
    });
    try {
      const error = await db
        .transaction((trx) => t.rota.enqueue("knex.hook", {}, { client: fromKnex(trx) }))
        .catch((e: unknown) => e);
      expect(isRotaError(error, "ORM_RESULT_UNREADABLE")).toBe(true);
      expect((error as Error).message).toMatch(/postProcessResponse/);
    } finally {
      await db.destroy();
    }
  });
});
