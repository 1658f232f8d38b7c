// Fault: the network path to PostgreSQL is cut (every open connection closed
// at once), then connections are refused for a while, then it comes back.
// Only rota's connections go through the proxy: the shared server and
// everyone else's connections to it are left alone.
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { startFaultRig, useProxiedSchema } from "../helpers/fault-rig.js";

const proxied = useProxiedSchema();

describe("faults: connections cut, then refused, then back", () => {
  it("the worker, its LISTEN and the orchestrator come back by themselves, with bounded attempts meanwhile; every job completes once", async () => {
    const { t, proxy } = proxied;
    const rig = await startFaultRig({ url: proxy.url(t.url), direct: t.rota });
    try {
      const first = await rig.running(5);

      proxy.refuse();
      const started = performance.now();
      const before = { claims: rig.worker.claims, refused: proxy.refused };
      // The handlers return while the database is away: their outcomes wait
      // in the completer; the jobs enqueued meanwhile wait in the table.
      rig.openGate();
      const second = await rig.enqueue(5);

      // The worker says what is wrong, without asking the database.
      await rig.expectOutageSeen();
      // rota doctor, run against the same (refusing) address, says it too.
      const doctor = await runCli([
        "doctor",
        "--json",
        "--schema",
        t.schema,
        "--database-url",
        proxy.url(t.url),
      ]);
      expect(doctor.code).toBe(1);
      const report = JSON.parse(doctor.stdout);
      expect(report).toMatchObject({ ok: false, reachable: false });
      expect(report.problems[0].code).toBe("DATABASE_UNREACHABLE");
      expect(report.problems[0].message).toMatch(/Cannot connect to PostgreSQL/);

      // Three claims failed in a row: the retries back off (1 s, 2 s, ...).
      await expect
        .poll(() => rig.worker.health().claimFailures, { timeout: 15_000 })
        .toBeGreaterThanOrEqual(3);
      const health = rig.worker.health();
      expect(health.lastClaimError).not.toBeNull();
      expect(health.lastListenError?.code).toBe("DATABASE_UNREACHABLE");
      const seconds = (performance.now() - started) / 1000;
      const claims = rig.worker.claims - before.claims;
      const connections = proxy.refused - before.refused;
      // No busy loop: claims back off from 1 s and every component waits
      // between connection attempts. About 3 claims and 13 connections in
      // the first 2 s here; before the orchestrator stopped a tick at the
      // first step that found the database gone, its 200 ms ticks alone
      // made 25 attempts a second (one per step).
      expect(claims).toBeLessThanOrEqual(6);
      expect(connections / seconds).toBeLessThan(10);

      proxy.restore();
      await rig.expectRecovered([...first, ...second]);
      expect(rig.worker.health()).toMatchObject({
        databaseReachable: true,
        listening: true,
        claimFailures: 0,
      });
      expect(rig.worker.health().listenAttempts).toBeGreaterThan(1);
    } finally {
      await rig.stop();
    }
  });

  it("an outcome written after its job was rescued is fenced: the job runs again and succeeds once", async () => {
    const { t, proxy } = proxied;
    const leaseMs = 5_000;
    const rig = await startFaultRig({ url: proxy.url(t.url), direct: t.rota, leaseMs });
    try {
      const ids = await rig.running(3);
      proxy.refuse();
      rig.openGate();
      // The handlers have returned; their outcomes cannot be written.
      await expect.poll(() => rig.worker.health().databaseReachable).toBe(false);
      // Meanwhile, on a connection that still works, the leases run out
      // (by the database clock) and the jobs are rescued for another try.
      await t.rota.clock.shift(leaseMs + 1_000);
      expect(await t.rota.rescueExpired()).toMatchObject({ retried: 3 });

      proxy.restore();
      // The late successes of attempt 1 are refused by the fence; attempt 2
      // runs and is the one success written.
      await rig.settled(ids);
      for (const id of ids) {
        expect(await t.rota.getJob(id)).toMatchObject({ state: "succeeded", attempts: 2 });
        expect({ id, runs: rig.ran.get(id), successes: rig.successes.get(id) }).toEqual({
          id,
          runs: 2,
          successes: 1,
        });
      }
      await expect.poll(() => rig.fenced.length, { timeout: 10_000 }).toBe(3);
      expect(rig.fenced.map((f) => f.attempt)).toEqual([1, 1, 1]);
      expect(rig.rejections).toEqual([]);
    } finally {
      await rig.stop();
      await t.rota.clock.reset();
    }
  });
});
