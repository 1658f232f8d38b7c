// The orchestrator's leader lease: one leader at a time, a standby takes over
// within one TTL of the leader dying (or at once when it stops), and a stale
// leader's writes are fenced by the epoch.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { readLease } from "../../src/orchestrator/leader.js";
import { materializeDue } from "../../src/schedule/materializer.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
let other: Rota;
beforeAll(async () => {
  t = await migratedSchema();
  other = new Rota({ connection: t.url, schema: t.schema });
});
afterAll(async () => {
  await other.close();
  await t.drop();
});

describe("leadership", () => {
  it("one leader; a standby takes over after the TTL when the leader dies; the stale leader is fenced", async () => {
    const a = t.rota.orchestrator({ holder: "a", leaseTtlMs: 10_000, leaseName: "lead-1" });
    const b = other.orchestrator({ holder: "b", leaseTtlMs: 10_000, leaseName: "lead-1" });
    const first = await a.tick();
    expect(first.leader).toBe(true);
    const standby = await b.tick();
    expect(standby.leader).toBe(false);
    expect(standby.materialized).toBeNull();

    // The leader "dies" (stops ticking). Just before the TTL, b still waits.
    await t.rota.clock.shift(9_000);
    expect((await b.tick()).leader).toBe(false);
    await t.rota.clock.shift(1_500);
    const takeover = await b.tick();
    expect(takeover.leader).toBe(true);
    expect(takeover.epoch).toBe((first.epoch as number) + 1);
    const lease = await readLease(t.db, "lead-1");
    expect(lease).toMatchObject({ holder: "b", epoch: takeover.epoch, valid: true });

    // a wakes up: its renewal is refused and it does not act as leader.
    const lost: string[] = [];
    t.rota.events.on("leader:lost", (e) => lost.push(e.holder));
    const stale = await a.tick();
    expect(stale.leader).toBe(false);
    expect(lost).toEqual(["a"]);

    // A write fenced on a's old epoch is refused even if a tried it.
    await t.rota.schedules.upsert({ name: "fenced", task: "x", cron: "* * * * *", horizon: 1 });
    await t.rota.clock.shift(60_000);
    const fenced = await materializeDue(t.db, t.rota.events, {
      lease: { name: "lead-1", holder: "a", epoch: first.epoch as number },
    });
    expect(fenced.schedules).toBe(0);
    expect(fenced.executions).toBe(0);
  });

  it("a leader that stops releases the lease; a standby leads at its next tick", async () => {
    const a = t.rota.orchestrator({ holder: "a", leaseTtlMs: 60_000, leaseName: "lead-2" });
    const b = other.orchestrator({ holder: "b", leaseTtlMs: 60_000, leaseName: "lead-2" });
    expect((await a.tick()).leader).toBe(true);
    expect((await b.tick()).leader).toBe(false);
    await a.stop();
    expect((await b.tick()).leader).toBe(true);
  });

  it("started orchestrators: exactly one leads, and the survivor leads after the leader stops", async () => {
    const a = t.rota.orchestrator({
      holder: "a",
      leaseTtlMs: 1_000,
      tickMs: 50,
      leaseName: "lead-3",
    });
    const b = other.orchestrator({
      holder: "b",
      leaseTtlMs: 1_000,
      tickMs: 50,
      leaseName: "lead-3",
    });
    const acquired = new Promise<string>((resolve) => {
      t.rota.events.on("leader:acquired", (e) => e.lease === "lead-3" && resolve(e.holder));
      other.events.on("leader:acquired", (e) => e.lease === "lead-3" && resolve(e.holder));
    });
    a.start();
    b.start();
    const leader = await acquired;
    const [leading, standing] = leader === "a" ? [a, b] : [b, a];
    expect(leading.isLeader).toBe(true);
    expect(standing.isLeader).toBe(false);
    const events = leader === "a" ? other.events : t.rota.events;
    const takeover = new Promise<void>((resolve) => {
      events.on("leader:acquired", (e) => e.lease === "lead-3" && resolve());
    });
    await leading.stop();
    await takeover;
    expect(standing.isLeader).toBe(true);
    await standing.stop();
  });

  it("refuses a tick slower than a third of the lease, which would let the lease lapse", () => {
    expect(() => t.rota.orchestrator({ tickMs: 20_000, leaseTtlMs: 15_000 })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTION" }),
    );
  });

  it("refuses a batch size that is not a whole number of schedules, naming it as a count", () => {
    for (const batchSize of [0, 1.5]) {
      let error: unknown = null;
      try {
        t.rota.orchestrator({ batchSize });
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: "INVALID_OPTION" });
      expect((error as Error).message).toContain("batchSize");
      expect((error as Error).message).not.toMatch(/milli/i);
    }
  });
});
