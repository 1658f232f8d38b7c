// Fault: PostgreSQL itself restarts (a fast shutdown: every backend is told
// "terminating connection due to administrator command", then the port
// refuses connections until the server is up again). The server is an
// embedded one on its own port and data folder, never the shared one.
import { chmodSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres } from "../../src/dev/embedded.js";
import { startFaultRig } from "../helpers/fault-rig.js";

let server: EmbeddedPostgres;
let port: number;
let direct: Rota;
const dataDir = resolve(".rota/fault-restart-pgdata");

beforeAll(async () => {
  mkdirSync(".rota", { recursive: true });
  chmodSync(".rota", 0o755);
  port = await freePort();
  server = await startEmbeddedPostgres({ dataDir, port });
  direct = new Rota({ connection: server.url, schema: "fault_restart" });
  // The data folder is kept between runs: start from an empty schema.
  await databaseOf(direct).pool.query("drop schema if exists fault_restart cascade");
  await direct.migrate();
});
afterAll(async () => {
  await direct?.close();
  await server?.stop();
});

describe("faults: the PostgreSQL server restarts", () => {
  it("the worker, its LISTEN and the orchestrator reconnect with bounded attempts; every job completes once", async () => {
    const rig = await startFaultRig({ url: server.url, direct });
    const lost: unknown[] = [];
    rig.rota.events.on("worker:listen:lost", (e) => void lost.push(e.error));
    try {
      const first = await rig.running(5);

      await server.stop();
      const before = rig.worker.claims;
      rig.openGate();
      await rig.expectOutageSeen();
      // The server's goodbye (57P01 or a cut connection), then ECONNREFUSED.
      await expect
        .poll(() => rig.worker.health().claimFailures, { timeout: 15_000 })
        .toBeGreaterThanOrEqual(3);
      expect(rig.worker.health().lastClaimError?.code).toBe("ECONNREFUSED");
      expect(rig.worker.claims - before).toBeLessThanOrEqual(6);
      expect(lost.length).toBeGreaterThan(0);

      server = await startEmbeddedPostgres({ dataDir, port });
      const second = await rig.enqueue(5);
      await rig.expectRecovered([...first, ...second]);
    } finally {
      await rig.stop();
    }
  });
});
