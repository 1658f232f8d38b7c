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
  const rows = await t.rota.db.pool.query<{ n: number }>(
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
});
