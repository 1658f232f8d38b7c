import { afterAll, describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { LATEST_SCHEMA_VERSION } from "../../src/db/migrate.js";
import { runCli } from "../helpers/cli.js";
import { databaseUrl, dropSchema, uniqueSchema, withClient } from "../helpers/database.js";

const schemas: string[] = [];
function rotaOnFreshSchema(): Rota {
  const schema = uniqueSchema("diag");
  schemas.push(schema);
  return new Rota({ connection: databaseUrl(), schema });
}
afterAll(async () => {
  for (const schema of schemas) await dropSchema(databaseUrl(), schema);
});

describe("rota.diagnose()", () => {
  it("reports pending migrations, then a healthy schema, then the leader once one has run", async () => {
    const rota = rotaOnFreshSchema();
    try {
      const before = await rota.diagnose();
      expect(before).toMatchObject({
        ok: false,
        reachable: true,
        schema: rota.schema,
        schemaVersion: 0,
        latestVersion: LATEST_SCHEMA_VERSION,
        leader: null,
      });
      expect(before.serverVersion).toMatch(/^\d+/);
      expect(before.pendingMigrations).toHaveLength(LATEST_SCHEMA_VERSION);
      expect(before.pendingMigrations[0]).toEqual({ version: 1, name: "clock" });
      expect(before.problems.map((p) => p.code)).toEqual(["SCHEMA_NOT_MIGRATED"]);

      await rota.migrate();
      const healthy = await rota.diagnose();
      expect(healthy).toMatchObject({
        ok: true,
        schemaVersion: LATEST_SCHEMA_VERSION,
        pendingMigrations: [],
        leader: null,
        problems: [],
      });

      const orchestrator = rota.orchestrator({ holder: "diag-leader" });
      expect((await orchestrator.tick()).leader).toBe(true);
      const led = await rota.diagnose();
      expect(led.ok).toBe(true);
      expect(led.leader).toMatchObject({ holder: "diag-leader", epoch: 1, valid: true });
      expect(led.leader?.expiresAt).toBeInstanceOf(Date);
      // Another lease name is asked for by name.
      expect((await rota.diagnose({ leaseName: "nobody" })).leader).toBeNull();
      await orchestrator.stop();
      expect((await rota.diagnose()).leader).toMatchObject({ holder: "diag-leader", valid: false });
    } finally {
      await rota.close();
    }
  });

  it("reports a schema newer than this rota", async () => {
    const rota = rotaOnFreshSchema();
    try {
      await rota.migrate();
      await withClient((c) =>
        c.query(`insert into "${rota.schema}".migrations (version, name) values ($1, 'future')`, [
          LATEST_SCHEMA_VERSION + 1,
        ]),
      );
      const report = await rota.diagnose();
      expect(report).toMatchObject({ ok: false, schemaVersion: LATEST_SCHEMA_VERSION + 1 });
      expect(report.problems.map((p) => p.code)).toEqual(["SCHEMA_TOO_NEW"]);
    } finally {
      await rota.close();
    }
  });

  it("reports an unreachable database instead of throwing", async () => {
    const rota = new Rota({ connection: "postgres://root:secret@127.0.0.1:1/x" });
    try {
      const report = await rota.diagnose();
      expect(report).toMatchObject({ ok: false, reachable: false, serverVersion: null });
      expect(report.problems.map((p) => p.code)).toEqual(["DATABASE_UNREACHABLE"]);
      expect(report.problems[0]?.message).not.toContain("secret");
    } finally {
      await rota.close();
    }
  });

  it("is what `rota doctor` prints, leader included", async () => {
    const rota = rotaOnFreshSchema();
    try {
      await rota.migrate();
      await rota.orchestrator({ holder: "doctor-sees-me" }).tick();
      const args = ["doctor", "--schema", rota.schema, "--database-url", databaseUrl()];
      const json = await runCli([...args, "--json"]);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({
        ok: true,
        schema: rota.schema,
        schema_version: LATEST_SCHEMA_VERSION,
        leader: { holder: "doctor-sees-me", epoch: 1, valid: true },
        problems: [],
      });
      const text = await runCli(args);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain("leader      doctor-sees-me, epoch 1, until");
      expect(text.stdout).toContain("healthy");
    } finally {
      await rota.close();
    }
  });
});
