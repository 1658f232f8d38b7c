// Guarantee 8: a schedule handed over to rota (from another scheduler, or
// with no cursor_at) records a baseline and fires at its next occurrence,
// never in a burst for what came due before; a hand-over ramps by percent
// and rolls back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

const MINUTE = 60_000;

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

async function executions(names: string[]) {
  const rows = await t.db.pool.query<{ name: string; n: number }>(
    `select s.name, count(j.id)::int as n from "${t.schema}".schedules s
     left join "${t.schema}".jobs j on j.schedule_id = s.id and j.state <> 'superseded'
     where s.name = any($1) group by s.name`,
    [names],
  );
  return Object.fromEntries(rows.rows.map((r) => [r.name, r.n]));
}

describe("hand-over without a burst", () => {
  it("an external schedule is ignored until handed over, then fires at its next occurrence only", async () => {
    const orchestrator = t.rota.orchestrator({ holder: "ho", leaseTtlMs: 3_600_000 });
    await t.rota.schedules.upsert({
      name: "legacy",
      task: "legacy.job",
      queue: "handover",
      cron: "* * * * *",
      owner: "external",
      catchUp: "all",
    });
    const fired: Date[] = [];
    const worker = t.rota.worker({
      logger: silentLogger,
      queues: ["handover"],
      rescueIntervalMs: 0,
      tasks: {
        "legacy.job": async (_p, ctx) => {
          fired.push(ctx.job.occurrenceAt as Date);
        },
      },
    });
    await worker.start();
    // An hour under the other scheduler: rota plans nothing.
    for (let i = 0; i < 6; i++) {
      await t.rota.clock.shift(10 * MINUTE);
      await orchestrator.tick();
    }
    expect(await executions(["legacy"])).toEqual({ legacy: 0 });
    expect(await t.rota.schedules.upcoming("legacy")).toEqual([]);

    const handedAt = await t.rota.clock.now();
    const changes = await t.rota.schedules.handover({ names: ["legacy"] });
    expect(changes).toEqual([{ name: "legacy", from: "external", to: "rota" }]);
    await orchestrator.tick();
    const planned = await t.rota.schedules.upcoming("legacy", { limit: 3 });
    // The baseline: the first planned run is the next minute mark, nothing earlier.
    expect(planned[0]?.runAt.getTime()).toBe(
      (Math.floor(handedAt.getTime() / MINUTE) + 1) * MINUTE,
    );
    expect(fired).toEqual([]);
    const ran = nextEvent(t.rota.events, "job:run:success");
    await t.rota.clock.shift(MINUTE);
    await ran;
    expect(fired.map((d) => d.getTime())).toEqual([planned[0]?.runAt.getTime()]);
    await worker.stop();
  });

  it("handover --percent ramps up by a stable hash and rolls back", async () => {
    const names = Array.from({ length: 40 }, (_, i) => `ramp-${i}`);
    for (const name of names) {
      await t.rota.schedules.upsert({ name, task: "x", cron: "0 * * * *", owner: "external" });
    }
    // A rota-owned schedule never takes part.
    await t.rota.schedules.upsert({ name: "native", task: "x", cron: "0 * * * *" });
    const owned = async () =>
      (await t.rota.schedules.list({ owner: "rota" }))
        .map((s) => s.name)
        .filter((n) => n !== "native");
    const progress: number[] = [];
    await t.rota.schedules.handover({ percent: 25 }, (done) => progress.push(done));
    // Progress after each schedule taking part (these 40 and the one above).
    expect(progress).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
    const quarter = await owned();
    expect(quarter.length).toBeGreaterThan(0);
    expect(quarter.length).toBeLessThan(40);
    await t.rota.schedules.handover({ percent: 60 });
    const more = await owned();
    expect(more.length).toBeGreaterThan(quarter.length);
    expect(quarter.every((n) => more.includes(n))).toBe(true);
    // Each handed-over schedule has its horizon planned; the others nothing.
    const counts = await executions(names);
    for (const name of names) expect(counts[name]).toBe(more.includes(name) ? 3 : 0);
    // Roll back: everything returns to the other scheduler, executions superseded.
    await t.rota.schedules.handover({ percent: 0 });
    expect(await owned()).toEqual([]);
    const after = await executions(names);
    expect(Object.values(after).every((n) => n === 0)).toBe(true);
    expect((await t.rota.schedules.get("native"))?.owner).toBe("rota");
  });
});
