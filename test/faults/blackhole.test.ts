// Fault: the network drops every packet (a firewall or NAT that lost its
// state): open connections stay open and hear nothing, new ones connect
// and hear nothing. No error ever comes; only rota's own timeouts end the
// wait (connectTimeoutMs, the worker's and the orchestrator's
// queryTimeoutMs, the LISTEN connection's check). Connections that were
// blackholed stay dead after the network is back, as after a lost NAT entry.
import { describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { FAULT_TIMEOUTS, startFaultRig, useProxiedSchema } from "../helpers/fault-rig.js";

const proxied = useProxiedSchema();

describe("faults: a network that drops every packet, then comes back", () => {
  it("timeouts end every wait: the worker, its LISTEN and the orchestrator recover; every job completes once", async () => {
    const { t, proxy } = proxied;
    const rig = await startFaultRig({ url: proxy.url(t.url), direct: t.rota });
    try {
      const first = await rig.running(5);

      proxy.blackhole();
      const started = performance.now();
      const before = { claims: rig.worker.claims, accepted: proxy.accepted };
      rig.openGate();
      const second = await rig.enqueue(5);

      // A statement times out after queryTimeoutMs; the LISTEN check
      // within twice that: the worker says so.
      await rig.expectOutageSeen();
      const codes = [
        rig.worker.health().lastListenError?.code,
        rig.worker.health().lastClaimError?.code,
      ];
      for (const code of codes) expect(["QUERY_TIMEOUT", "DATABASE_UNREACHABLE"]).toContain(code);

      // A diagnosis through the same network answers within connectTimeoutMs.
      const doctor = new Rota({
        connection: proxy.url(t.url),
        schema: t.schema,
        connectTimeoutMs: FAULT_TIMEOUTS.connectMs,
      });
      try {
        const asked = performance.now();
        const diagnosis = await doctor.diagnose();
        expect(performance.now() - asked).toBeLessThan(FAULT_TIMEOUTS.connectMs + 2_000);
        expect(diagnosis).toMatchObject({ ok: false, reachable: false });
        expect(diagnosis.problems[0]?.code).toBe("DATABASE_UNREACHABLE");
        expect(diagnosis.problems[0]?.message).toMatch(/no answer within 1000 ms/);
      } finally {
        await doctor.close();
      }

      await expect
        .poll(() => rig.worker.health().claimFailures, { timeout: 15_000 })
        .toBeGreaterThanOrEqual(3);
      const seconds = (performance.now() - started) / 1000;
      // Bounded: each attempt waits out its timeout, then backs off.
      expect(rig.worker.claims - before.claims).toBeLessThanOrEqual(6);
      expect((proxy.accepted - before.accepted) / seconds).toBeLessThan(10);

      proxy.restore();
      await rig.expectRecovered([...first, ...second]);
    } finally {
      await rig.stop();
    }
  });

  it("stop() and close() end while the network still drops everything", async () => {
    const { t, proxy } = proxied;
    const rig = await startFaultRig({ url: proxy.url(t.url), direct: t.rota });
    try {
      await rig.running(3);
      proxy.blackhole();
      rig.openGate();
      const stopping = performance.now();
      await rig.stop();
      // Each wait on the database is bounded (5 s a step, outcomes at most
      // max(gracefulStopMs, 5 s)); the timeouts make most of them far shorter.
      expect(performance.now() - stopping).toBeLessThan(20_000);
      expect(rig.worker.health().state).toBe("stopped");
      expect(rig.rejections).toEqual([]);
    } finally {
      proxy.restore();
    }
  });
});
