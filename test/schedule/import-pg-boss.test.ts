// Importing pg-boss's schedules: pg-boss itself creates them (its own schema
// in the test database, through boss.schedule), rota reads them from its
// tables as external schedules, and a hand-over then takes each on at the next
// occurrence of pg-boss's own grid: none fired twice, none left out.
//
// pg-boss 12 declares Node >= 22.12; what this file uses of it (start,
// createQueue, schedule, previewSchedule, stop) runs on Node 20 as well.
import pg from "pg";
import { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRotaError } from "../../src/errors.js";
import { dropSchema, migratedSchema, type TestSchema } from "../helpers/database.js";
import { expectHandoverAtPeersNext } from "../helpers/handover.js";

let t: TestSchema;
let boss: PgBoss;
let bossSchema: string;

beforeAll(async () => {
  t = await migratedSchema();
  bossSchema = `pgboss_${t.schema}`;
  // Only the tables and the API: no cron pass or maintenance running beside the test.
  boss = new PgBoss({
    connectionString: t.url,
    schema: bossSchema,
    schedule: false,
    supervise: false,
  });
  boss.on("error", (error) => process.stderr.write(`pg-boss: ${error.message}\n`));
  await boss.start();
  await boss.createQueue("report.daily");
  await boss.createQueue("sync", { retryLimit: 7 });
  await boss.createQueue("tick");
  await boss.schedule(
    "report.daily",
    "0 9 * * 1-5",
    { format: "pdf" },
    {
      tz: "Europe/Berlin",
      priority: 5,
      retryLimit: 4,
      retryDelay: 30,
      retryBackoff: true,
      expireInSeconds: 600,
      singletonKey: "daily",
      missed: "once",
    },
  );
  await boss.schedule("sync", "*/5 * * * *", undefined, { key: "eu-1" });
  await boss.schedule("sync", "*/5 * * * *", { region: "us" }, { key: "us-1" });
  // Minute 15 in Kolkata (UTC+5:30) is minute 45 in UTC: the hand-over below
  // shows both schedulers read the zone the same way.
  await boss.schedule("tick", "15 * * * *", { n: 1 }, { tz: "Asia/Kolkata" });
}, 120_000);

afterAll(async () => {
  await boss?.stop({ graceful: false, close: true });
  await dropSchema(t.url, bossSchema);
  await t.drop();
});

describe("rota schedules import --from pg-boss", () => {
  it("maps each of pg-boss's schedules to an external schedule and lists what did not map", async () => {
    const dry = await t.rota.schedules.importFromPgBoss({ schema: bossSchema, dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.imported.map((s) => [s.name, s.outcome])).toEqual([
      ["pg-boss:report.daily", "created"],
      ["pg-boss:sync:eu-1", "created"],
      ["pg-boss:sync:us-1", "created"],
      ["pg-boss:tick", "created"],
    ]);
    expect(await t.rota.schedules.list()).toEqual([]);

    const progress: number[] = [];
    const result = await t.rota.schedules.importFromPgBoss({
      schema: bossSchema,
      onProgress: (done) => progress.push(done),
    });
    expect(progress).toEqual([1, 2, 3, 4]);
    const report = result.imported.find((s) => s.name === "pg-boss:report.daily");
    expect(report).toMatchObject({
      source: 'pg-boss schedule "report.daily"',
      task: "report.daily",
      cron: "0 9 * * 1-5",
      timezone: "Europe/Berlin",
      outcome: "created",
    });
    expect(report?.unmapped.map((u) => u.option).sort()).toEqual([
      "expireInSeconds",
      "retryBackoff",
      "retryDelay",
      "singletonKey",
    ]);
    expect(report?.unmapped.every((u) => u.reason.length > 20)).toBe(true);

    const daily = await t.rota.schedules.get("pg-boss:report.daily");
    expect(daily).toMatchObject({
      owner: "external",
      task: "report.daily",
      payload: { format: "pdf" },
      priority: 5,
      maxAttempts: 5,
      catchUp: "latest",
    });
    // No retryLimit on the schedule: the queue's, as pg-boss falls back to it.
    expect(await t.rota.schedules.get("pg-boss:sync:eu-1")).toMatchObject({
      owner: "external",
      maxAttempts: 8,
      catchUp: "none",
      payload: {},
    });
    expect((await t.rota.schedules.get("pg-boss:sync:us-1"))?.payload).toEqual({ region: "us" });
    // External: rota plans nothing for them until a hand-over.
    expect(await t.rota.schedules.upcoming("pg-boss:tick")).toEqual([]);

    const again = await t.rota.schedules.importFromPgBoss({ schema: bossSchema });
    expect(again.imported.every((s) => s.outcome === "unchanged")).toBe(true);
  });

  it("refuses the whole import over one schedule rota cannot take, naming it, and writes nothing", async () => {
    const before = (await t.rota.schedules.list()).length;
    // Written behind pg-boss's back, as its docs allow: an hour that does not exist.
    await t.db.pool.query(
      `insert into ${pg.escapeIdentifier(bossSchema)}.schedule (name, key, cron) values ('sync', 'bad', '0 25 * * *')`,
    );
    try {
      await t.rota.schedules.importFromPgBoss({ schema: bossSchema });
      expect.unreachable();
    } catch (error) {
      expect(isRotaError(error, "INVALID_IMPORT")).toBe(true);
      expect((error as Error).message).toContain('pg-boss schedule "sync" key "bad"');
      expect((error as Error).message).toContain("nothing was written");
    } finally {
      await t.db.pool.query(
        `delete from ${pg.escapeIdentifier(bossSchema)}.schedule where key = 'bad'`,
      );
    }
    expect((await t.rota.schedules.list()).length).toBe(before);
    await expect(t.rota.schedules.importFromPgBoss({ schema: "no_such_schema" })).rejects.toThrow(
      expect.objectContaining({ code: "IMPORT_SOURCE_NOT_FOUND" }),
    );
  });

  it("a hand-over takes the schedule on at the next occurrence of pg-boss's grid: no double fire, no gap", async () => {
    // pg-boss's own walk of its grid, in the zone as it reads it.
    await expectHandoverAtPeersNext(t, { name: "pg-boss:tick", task: "tick" }, (after, count) => {
      const grid = boss.previewSchedule("15 * * * *", { tz: "Asia/Kolkata", from: after, count });
      expect(grid[0]?.getUTCMinutes()).toBe(45);
      return grid.map((d) => d.getTime());
    });
  });
});
