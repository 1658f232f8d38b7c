// Events of what rota writes in a transaction of its own are heard once it
// commits, and not at all when it rolls back (events.ts, HeldEvents): a
// listener (a log, a metric, a test) never hears of executions that were
// never written.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RotaEventMap, transactionWithEvents } from "../../src/events.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

/** Records every schedule:execution:materialized event until stopped. */
function materialized() {
  const heard: RotaEventMap["schedule:execution:materialized"][] = [];
  const off = t.rota.events.on("schedule:execution:materialized", (e) => void heard.push(e));
  return { heard, off };
}

describe("events of a transaction", () => {
  it("a write refused half-way through upsertMany: the first schedule's executions, planned and rolled back, are never announced", async () => {
    const s = `"${t.schema}"`;
    await t.db.pool.query(`
      create function ${s}.refuse_second() returns trigger language plpgsql as $$
      begin
        if new.name = 'events-2' then raise exception 'refused'; end if;
        return new;
      end $$;
      create trigger refuse_second before insert on ${s}.schedules
        for each row execute function ${s}.refuse_second();`);
    const { heard, off } = materialized();
    try {
      await expect(
        t.rota.schedules.upsertMany([
          { name: "events-1", task: "t", cron: "* * * * *" },
          { name: "events-2", task: "t", cron: "* * * * *" },
        ]),
      ).rejects.toThrow(/refused/);
      expect(heard).toEqual([]);
      const jobs = await t.db.pool.query(`select count(*)::int as n from ${s}.jobs`);
      expect(jobs.rows[0].n).toBe(0);
    } finally {
      off();
      await t.db.pool.query(`drop trigger refuse_second on ${s}.schedules`);
    }
  });

  it("a write that commits: each execution announced, with the id it was written under", async () => {
    const { heard, off } = materialized();
    try {
      await t.rota.schedules.upsert({ name: "events-3", task: "t", cron: "* * * * *" });
      expect(heard.length).toBeGreaterThan(0);
      const ids = await t.db.pool.query<{ id: string }>(
        `select id::text from "${t.schema}".jobs order by id`,
      );
      expect(heard.map((e) => e.executionId).sort()).toEqual(ids.rows.map((r) => r.id).sort());
    } finally {
      off();
    }
  });

  it("are held until the commit, in order, and dropped with a rollback", async () => {
    const heard: string[] = [];
    const off = t.rota.events.on("schedule:quiesced", (e) => void heard.push(e.name));
    try {
      const quiesced = (name: string) => ({ scheduleId: "1", name, error: "x" });
      await transactionWithEvents(t.db, t.rota.events, async (client, events) => {
        await client.query("select 1");
        events.emit("schedule:quiesced", quiesced("first"));
        events.emit("schedule:quiesced", quiesced("second"));
        expect(events.wants("schedule:quiesced")).toBe(true);
        // Not yet: the transaction has not committed.
        expect(heard).toEqual([]);
      });
      expect(heard).toEqual(["first", "second"]);
      await expect(
        transactionWithEvents(t.db, t.rota.events, async (_client, events) => {
          events.emit("schedule:quiesced", quiesced("rolled back"));
          throw new Error("half-way");
        }),
      ).rejects.toThrow("half-way");
      expect(heard).toEqual(["first", "second"]);
    } finally {
      off();
    }
  });
});
