// The schedules API refuses bad input with a code and writes nothing, and a
// few behaviours found in review: upcoming from far ahead, re-upserting a
// schedule in a hand-over.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

async function count(table: string): Promise<number> {
  const rows = await t.db.pool.query<{ n: number }>(
    `select count(*)::int as n from "${t.schema}".${table}`,
  );
  return rows.rows[0]?.n as number;
}

describe("schedules API", () => {
  it("bad input: a RotaError with a code, nothing written", async () => {
    await t.rota.schedules.upsert({ name: "ok", task: "t", cron: "* * * * * *" });
    const before = [await count("schedules"), await count("jobs")];
    const cases: [() => Promise<unknown>, string][] = [
      [
        () =>
          t.rota.schedules.upsert({
            name: "far",
            task: "t",
            every: "1d",
            anchor: "+200000-01-01T00:00:00Z",
          }),
        "INVALID_INTERVAL",
      ],
      [
        () =>
          t.rota.schedules.upsert({
            name: "old",
            task: "t",
            every: "1d",
            anchor: "1066-10-14T09:00:00Z",
          }),
        "INVALID_INTERVAL",
      ],
      [
        () =>
          t.rota.schedules.upsert({
            name: "x",
            task: "t",
            cron: "* * * * *",
            anchor: "2026-01-01T00:00:00Z",
          }),
        "INVALID_SCHEDULE_SPEC",
      ],
      [
        () => t.rota.schedules.upsert({ name: "x", task: "t", cron: "* * * * *", horizon: 1001 }),
        "INVALID_OPTION",
      ],
      [
        () =>
          t.rota.schedules.upsert({ name: "x", task: "t", cron: "* * * * *", catchUpWindowMs: 0 }),
        "INVALID_OPTION",
      ],
      [
        () =>
          t.rota.schedules.upsert({
            name: "x",
            task: "t",
            cron: "* * * * *",
            payload: { f: () => 1 },
          }),
        "INVALID_PAYLOAD",
      ],
      [() => t.rota.schedules.skip("ok", { executionId: "abc" }), "INVALID_OPTION"],
      [() => t.rota.schedules.history("ok", { limit: -1 }), "INVALID_OPTION"],
      [() => t.rota.schedules.history("ok", { states: ["bogus"] }), "INVALID_OPTION"],
      [() => t.rota.schedules.list({ limit: 0 }), "INVALID_OPTION"],
      [() => t.rota.schedules.upcoming("ok", { from: new Date("x") }), "INVALID_OPTION"],
      [() => t.rota.schedules.upcoming("ok", { limit: 10_001 }), "INVALID_OPTION"],
      [() => t.rota.schedules.handover({ percent: 101 }), "INVALID_OPTION"],
      [() => t.rota.schedules.handover({ names: ["nobody"] }), "SCHEDULE_NOT_FOUND"],
      [() => t.rota.schedules.pause("nobody"), "SCHEDULE_NOT_FOUND"],
    ];
    for (const [call, code] of cases) {
      await expect(call()).rejects.toMatchObject({ name: "RotaError", code });
    }
    expect([await count("schedules"), await count("jobs")]).toEqual(before);
  });

  it("upcoming from far ahead computes its first run in one step", async () => {
    const runs = await t.rota.schedules.upcoming("ok", {
      from: new Date("2100-01-01T00:00:00Z"),
      limit: 3,
    });
    expect(runs.map((r) => r.runAt.toISOString())).toEqual([
      "2100-01-01T00:00:00.000Z",
      "2100-01-01T00:00:01.000Z",
      "2100-01-01T00:00:02.000Z",
    ]);
    // (Stepping second by second from now to 2100 would take hours and time the test out.)
  });

  it("upcoming lists each occurrence of a rare expression once: Feb 29 in Berlin", async () => {
    await t.rota.schedules.upsert({
      name: "leap-day",
      task: "t",
      cron: "0 0 29 2 *",
      timezone: "Europe/Berlin",
    });
    const runs = await t.rota.schedules.upcoming("leap-day", {
      from: new Date("2026-12-07T00:00:00Z"),
      limit: 6,
    });
    // Midnight of each Feb 29 in Berlin (UTC+1): materialized, then computed.
    expect(runs.map((r) => r.runAt.toISOString())).toEqual(
      [2028, 2032, 2036, 2040, 2044, 2048].map((y) => `${y}-02-28T23:00:00.000Z`),
    );
    expect(new Set(runs.map((r) => r.runAt.getTime())).size).toBe(6);
    expect(runs.map((r) => r.state)).toContain("computed");
  });

  it("upserting a schedule that is in a hand-over again does not undo the hand-over", async () => {
    const input = { name: "legacy", task: "t", cron: "0 * * * *", owner: "external" } as const;
    await t.rota.schedules.upsert(input);
    await t.rota.schedules.handover({ names: ["legacy"] });
    const again = await t.rota.schedules.upsert(input);
    expect(again.outcome).toBe("unchanged");
    expect(again.schedule.owner).toBe("rota");
    expect(await t.rota.schedules.upcoming("legacy", { limit: 1 })).toHaveLength(1);
    await t.rota.schedules.handover({ names: ["legacy"], to: "external" });
    expect((await t.rota.schedules.get("legacy"))?.owner).toBe("external");
  });

  it("upsertMany writes all or nothing, and reports progress", async () => {
    const progress: number[] = [];
    const ok = await t.rota.schedules.upsertMany(
      [
        { name: "many-1", task: "t", cron: "0 1 * * *" },
        { name: "many-2", task: "t", cron: "0 2 * * *" },
      ],
      (done) => progress.push(done),
    );
    expect(ok.map((r) => r.outcome)).toEqual(["created", "created"]);
    expect(progress).toEqual([1, 2]);
    // Refused up front: a bad input, or the same name twice.
    await expect(
      t.rota.schedules.upsertMany([
        { name: "many-3", task: "t", cron: "0 3 * * *" },
        { name: "many-4", task: "t", cron: "not cron" },
      ]),
    ).rejects.toMatchObject({ code: "INVALID_CRON" });
    await expect(
      t.rota.schedules.upsertMany([
        { name: "many-5", task: "t", cron: "0 5 * * *" },
        { name: "many-5", task: "t", cron: "0 6 * * *" },
      ]),
    ).rejects.toMatchObject({ code: "INVALID_OPTION" });
    // Refused by the database half-way: the first is rolled back with it.
    const s = `"${t.schema}"`;
    await t.db.pool.query(`
      create function ${s}.refuse_many_8() returns trigger language plpgsql as $$
      begin
        if new.name = 'many-8' then raise exception 'refused'; end if;
        return new;
      end $$;
      create trigger refuse_many_8 before insert on ${s}.schedules
        for each row execute function ${s}.refuse_many_8();`);
    await expect(
      t.rota.schedules.upsertMany([
        { name: "many-7", task: "t", cron: "0 7 * * *" },
        { name: "many-8", task: "t", cron: "0 8 * * *" },
      ]),
    ).rejects.toThrow(/refused/);
    await t.db.pool.query(`drop trigger refuse_many_8 on ${s}.schedules`);
    const names = (await t.rota.schedules.list({ namePrefix: "many-" })).map((x) => x.name);
    expect(names).toEqual(["many-1", "many-2"]);
  });
});
