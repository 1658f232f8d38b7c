// Fault: every backend of rota's (the worker's pools, its LISTEN connection,
// the orchestrator's) is ended with pg_terminate_backend, as an operator or
// a failover tool does. Only this test's own backends are ended: those whose
// client port is one of the proxy's upstream connections.
import { describe, expect, it } from "vitest";
import { startFaultRig, useProxiedSchema } from "../helpers/fault-rig.js";

const proxied = useProxiedSchema();

/** Ends the backends behind the proxy's open connections (this test's, no one else's); their pids. */
async function terminateOwnBackends(): Promise<{ pid: number; application_name: string }[]> {
  const { t, proxy } = proxied;
  const result = await t.db.pool.query<{ pid: number; application_name: string }>(
    `select pid, application_name from pg_stat_activity
      where client_addr = '127.0.0.1' and client_port = any($1::int[])
        and datname = current_database() and pid <> pg_backend_pid()`,
    [proxy.upstreamPorts()],
  );
  const pids = result.rows.map((r) => r.pid);
  await t.db.pool.query("select pg_terminate_backend(pid) from unnest($1::int[]) as pid", [pids]);
  return result.rows;
}

describe("faults: pg_terminate_backend of every rota backend", () => {
  it("the worker re-LISTENs and claims again, the orchestrator leads on, jobs running meanwhile complete once", async () => {
    const { t, proxy } = proxied;
    const rig = await startFaultRig({ url: proxy.url(t.url), direct: t.rota });
    const lost: unknown[] = [];
    rig.rota.events.on("worker:listen:lost", (e) => void lost.push(e.error));
    try {
      const first = await rig.running(5);
      const attemptsBefore = rig.worker.health().listenAttempts;

      const ended = await terminateOwnBackends();
      // The LISTEN connection, the claims', and the orchestrator's at least.
      const names = new Set(ended.map((b) => b.application_name));
      expect(names).toContain("rota worker");
      expect(names).toContain("rota worker claims");
      expect(names).toContain("rota orchestrator");

      await expect.poll(() => lost.length, { timeout: 10_000 }).toBeGreaterThan(0);
      // 57P01: "terminating connection due to administrator command".
      expect((lost[0] as { code?: string }).code).toBe("57P01");
      rig.openGate();
      const second = await rig.enqueue(5);
      await rig.expectRecovered([...first, ...second]);
      expect(rig.worker.health().listenAttempts).toBeGreaterThan(attemptsBefore);
    } finally {
      await rig.stop();
    }
  });
});
