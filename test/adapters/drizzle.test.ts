// rota/drizzle: rota's calls that take `client`, inside a Drizzle transaction
// (drizzle-orm/node-postgres), against the real database. Drizzle keeps
// dates, timestamps and intervals as text there; the probe statement checks
// that rota still gets pg's values.
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { pgSchema, serial, text } from "drizzle-orm/pg-core";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { fromDrizzle } from "../../src/adapters/drizzle.js";
import { ormConformance } from "./orm-conformance.js";

const { schema } = ormConformance(
  "Drizzle",
  async ({ url, schema }) => {
    const orders = pgSchema(schema).table("orders", {
      id: serial("id").primaryKey(),
      note: text("note").notNull(),
    });
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const db = drizzle(pool);
    return {
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            client: fromDrizzle(tx),
            insertOrder: async (note) => {
              await tx.insert(orders).values({ note });
            },
          }),
        ),
      close: () => pool.end(),
    };
  },
  {
    probeColumns: [
      "'2026-03-01'::date as day",
      "'2026-03-01 12:34:56.789'::timestamp as local_at",
      "'1 day 02:03:04'::interval as span",
      "array['2026-03-01 12:34:56+00'::timestamptz, null] as ats",
      "array['2026-03-01'::date] as days",
      "array[1.5, 2.25]::numeric[] as decimals",
      "1.50::numeric as decimal",
    ],
  },
);

describe("Drizzle's text for timestamps", () => {
  it("is what Drizzle itself returns, so the adapter's parsing is needed", async () => {
    const t = schema();
    const pool = new pg.Pool({ connectionString: t.url, max: 1 });
    try {
      const result = await drizzle(pool).execute(
        sql`select '2026-03-01 12:34:56+00'::timestamptz as at`,
      );
      expect(typeof result.rows[0]?.at).toBe("string");
      const viaAdapter = await fromDrizzle(drizzle(pool)).query<{ at: Date }>({
        text: "select '2026-03-01 12:34:56+00'::timestamptz as at",
      });
      expect(viaAdapter.rows[0]?.at).toEqual(new Date("2026-03-01T12:34:56Z"));
    } finally {
      await pool.end();
    }
  });
});
