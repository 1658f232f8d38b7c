// Guarantee 6: changing, pausing or deleting a schedule supersedes or removes
// its not-yet-started executions in the same transaction — and when that
// transaction fails, nothing of the change is left either.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { deferred, nextEvent } from "../helpers/events.js";

const MINUTE = 60_000;

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

async function byState(scheduleId: string) {
  const rows = await t.db.pool.query<{ state: string; n: number }>(
    `select state, count(*)::int as n from "${t.schema}".jobs where schedule_id = $1 group by state`,
    [scheduleId],
  );
  return Object.fromEntries(rows.rows.map((r) => [r.state, r.n]));
}

describe("no orphans", () => {
  it("delete removes planned executions with the schedule; a running one finishes", async () => {
    const { schedule } = await t.rota.schedules.upsert({
      name: "doomed",
      task: "slow",
      queue: "orphans",
      cron: "* * * * *",
      catchUp: "all",
    });
    const release = deferred();
    const started = nextEvent(t.rota.events, "job:run:start");
    const worker = t.rota.worker({
      logger: silentLogger,
      queues: ["orphans"],
      rescueIntervalMs: 0,
      tasks: { slow: () => release.promise },
    });
    await worker.start();
    await t.rota.clock.shift(MINUTE);
    const running = await started;
    const { removedExecutions } = await t.rota.schedules.remove("doomed");
    expect(removedExecutions).toBe(2);
    // Only the execution already running is left; nothing planned remains.
    expect(await byState(schedule.id)).toEqual({ running: 1 });
    expect(await t.rota.schedules.get("doomed")).toBeNull();
    const done = nextEvent(t.rota.events, "job:run:success");
    release.resolve();
    expect((await done).id).toBe(running.id);
    await worker.stop();
  });

  it("pause and disable leave no planned execution that could run", async () => {
    const { schedule } = await t.rota.schedules.upsert({
      name: "paused",
      task: "x",
      cron: "* * * * *",
    });
    await t.rota.schedules.pause("paused");
    expect(await byState(schedule.id)).toEqual({ superseded: 3 });
    await t.rota.schedules.resume("paused");
    await t.rota.schedules.disable("paused");
    expect(await byState(schedule.id)).toEqual({ superseded: 6 });
  });

  it("a change whose transaction fails half-way leaves the schedule and its executions as they were", async () => {
    const { schedule } = await t.rota.schedules.upsert({
      name: "steady",
      task: "x",
      cron: "* * * * *",
      payload: { v: 1 },
    });
    const s = `"${t.schema}"`;
    // The new executions' insert fails after the old ones were superseded and
    // the config updated, inside the change's transaction.
    await t.db.pool.query(`
      create function ${s}.refuse_v2() returns trigger language plpgsql as $$
      begin
        if new.payload = '{"v": 2}'::jsonb then raise exception 'refused'; end if;
        return new;
      end $$;
      create trigger refuse_v2 before insert on ${s}.jobs
        for each row execute function ${s}.refuse_v2();`);
    await expect(
      t.rota.schedules.upsert({ name: "steady", task: "x", cron: "* * * * *", payload: { v: 2 } }),
    ).rejects.toThrow(/refused/);
    const after = await t.rota.schedules.get("steady");
    expect(after?.payload).toEqual({ v: 1 });
    expect(after?.version).toBe(schedule.version);
    expect(await byState(schedule.id)).toEqual({ scheduled: 3 });
    await t.db.pool.query(`drop trigger refuse_v2 on ${s}.jobs`);
  });
});
