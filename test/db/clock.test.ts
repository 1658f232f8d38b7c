import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const HOUR = 3_600_000;

describe("the clock seam", () => {
  it("starts at the database's now()", async () => {
    const [clockNow, dbNow] = await withClient(async (c) => {
      const r = await c.query(`select "${t.schema}".clock_now() as a, now() as b`);
      return [r.rows[0].a as Date, r.rows[0].b as Date];
    });
    expect(clockNow.getTime()).toBe(dbNow.getTime());
  });

  it("shifts forward for every connection of the schema, and resets", async () => {
    const before = await t.rota.clock.now();
    const shifted = await t.rota.clock.shift(7 * 24 * HOUR);
    expect(shifted.getTime() - before.getTime()).toBeGreaterThanOrEqual(7 * 24 * HOUR);
    expect(shifted.getTime() - before.getTime()).toBeLessThan(7 * 24 * HOUR + 60_000);

    // Another connection, outside rota's pool, sees the same shifted time in SQL.
    const seen = await withClient(async (c) => {
      const r = await c.query(`select "${t.schema}".clock_now() - now() as ahead`);
      return r.rows[0].ahead as { days?: number };
    });
    expect(seen.days).toBe(7);

    const reset = await t.rota.clock.reset();
    expect(Math.abs(reset.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it("can be pinned for one transaction with the rota.now setting", async () => {
    const pinned = await withClient(async (c) => {
      await c.query("begin");
      await c.query("select set_config('rota.now', '2030-03-30 02:30:00+00', true)");
      const inside = await c.query(`select "${t.schema}".clock_now() as now`);
      await c.query("commit");
      const after = await c.query(`select "${t.schema}".clock_now() as now`);
      return { inside: inside.rows[0].now as Date, after: after.rows[0].now as Date };
    });
    expect(pinned.inside.toISOString()).toBe("2030-03-30T02:30:00.000Z");
    expect(pinned.after.getFullYear()).not.toBe(2030);
  });
});
