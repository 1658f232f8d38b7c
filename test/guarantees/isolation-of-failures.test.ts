// Guarantee 5: one bad schedule never stops the others. A spec that no longer
// parses (written by hand in SQL) disables its schedule once, with the reason
// stored and an event emitted, while the good schedules keep firing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RotaEventMap } from "../../src/events.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

const MINUTE = 60_000;

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("isolation of failures", () => {
  it("bad specs are quiesced once each; good schedules keep firing", async () => {
    const orchestrator = t.rota.orchestrator({ holder: "iso", leaseTtlMs: 3_600_000 });
    for (const name of ["good-1", "bad-cron", "bad-zone", "bad-every", "good-2"]) {
      await t.rota.schedules.upsert({ name, task: "noop", cron: "* * * * *", horizon: 1 });
    }
    const s = `"${t.schema}"`;
    // Each row broken a different way, behind rota's back.
    await t.db.pool.query(
      `update ${s}.schedules set cron = 'every tuesday' where name = 'bad-cron'`,
    );
    await t.db.pool.query(
      `update ${s}.schedules set timezone = 'Mars/Olympus' where name = 'bad-zone'`,
    );
    await t.db.pool.query(
      `update ${s}.schedules set cron = null, every = '100000000d' where name = 'bad-every'`,
    );
    const quiesced: RotaEventMap["schedule:quiesced"][] = [];
    t.rota.events.on("schedule:quiesced", (e) => quiesced.push(e));

    for (let minute = 0; minute < 5; minute++) {
      await t.rota.clock.shift(MINUTE);
      const report = await orchestrator.tick();
      expect(report.errors).toEqual([]);
    }

    expect(quiesced.map((e) => e.name).sort()).toEqual(["bad-cron", "bad-every", "bad-zone"]);
    expect(quiesced.find((e) => e.name === "bad-cron")?.error).toMatch(/INVALID|cron/i);
    for (const name of ["bad-cron", "bad-zone", "bad-every"]) {
      const schedule = await t.rota.schedules.get(name);
      expect(schedule?.enabled).toBe(false);
      expect(schedule?.lastError).toBeTruthy();
    }
    // The good ones went on: one execution per minute each (horizon 1 plus the five minutes).
    for (const name of ["good-1", "good-2"]) {
      const history = await t.rota.schedules.history(name, { limit: 100 });
      expect(history.length).toBeGreaterThanOrEqual(6);
      expect(new Set(history.map((e) => e.occurrenceAt?.getTime())).size).toBe(history.length);
    }
    // Fixing the spec and enabling it brings the schedule back.
    await t.db.pool.query(`update ${s}.schedules set cron = '*/2 * * * *' where name = 'bad-cron'`);
    const back = await t.rota.schedules.enable("bad-cron");
    expect(back.enabled).toBe(true);
    expect(back.lastError).toBeNull();
    expect(
      (await t.rota.schedules.upcoming("bad-cron", { limit: 1 }))[0]?.executionId,
    ).not.toBeNull();
  });

  it("a drifted schedule whose re-plan fails does not stop the others from being reconciled", async () => {
    const orchestrator = t.rota.orchestrator({
      holder: "iso3",
      leaseTtlMs: 3_600_000,
      leaseName: "iso3",
    });
    await t.rota.schedules.upsert({ name: "far-anchor", task: "noop", every: "1d" });
    await t.rota.schedules.upsert({ name: "plain-change", task: "noop", cron: "* * * * *" });
    const s = `"${t.schema}"`;
    // Both changed by hand; the first (lower id, reconciled first) so that it cannot be planned.
    await t.db.pool.query(
      `update ${s}.schedules set anchor = '200000-01-01T00:00:00Z' where name = 'far-anchor'`,
    );
    await t.db.pool.query(
      `update ${s}.schedules set payload = '{"v": 2}' where name = 'plain-change'`,
    );
    const report = await orchestrator.tick();
    expect(report.errors).toEqual([]);
    expect(report.reconciled?.reconciled).toBe(1);
    expect(report.reconciled?.failed).toBe(1);
    const planned = await t.rota.schedules.upcoming("plain-change", { limit: 1 });
    expect(planned[0]?.executionId).not.toBeNull();
    const far = await t.rota.schedules.get("far-anchor");
    expect(far?.lastError).toBeTruthy();
    // Every later tick still reconciles what it can.
    const again = await orchestrator.tick();
    expect(again.errors).toEqual([]);
  });

  it("a bad spec found while reconciling a hand-written change is quiesced the same way", async () => {
    const orchestrator = t.rota.orchestrator({
      holder: "iso2",
      leaseTtlMs: 3_600_000,
      leaseName: "iso2",
    });
    await t.rota.schedules.upsert({ name: "drifts-bad", task: "noop", cron: "* * * * *" });
    await t.db.pool.query(
      `update "${t.schema}".schedules set cron = '99 * * * *' where name = 'drifts-bad'`,
    );
    const report = await orchestrator.tick();
    expect(report.leader).toBe(true);
    expect(report.errors).toEqual([]);
    expect(report.reconciled?.quiesced).toBe(1);
    expect((await t.rota.schedules.get("drifts-bad"))?.enabled).toBe(false);
  });
});
