import { afterEach, describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { LATEST_SCHEMA_VERSION } from "../../src/db/migrate.js";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

// A worker or orchestrator refuses to start on a schema behind or ahead of
// this rota (assertSchemaCurrent at start), and runs nothing there.
let t: TestSchema | null = null;
afterEach(async () => {
  await t?.drop();
  t = null;
});

/** A schema whose tables exist but whose migrations table says `version`. */
async function schemaAtVersion(version: number): Promise<TestSchema> {
  const schema = await migratedSchema();
  await withClient(async (c) => {
    const table = `"${schema.schema}".migrations`;
    await c.query(`delete from ${table} where version > $1`, [version]);
    if (version > LATEST_SCHEMA_VERSION) {
      await c.query(`insert into ${table} (version, name) values ($1, 'from_the_future')`, [
        version,
      ]);
    }
  });
  return schema;
}

async function jobState(id: string): Promise<{ state: string; attempts: number }> {
  return withClient(async (c) => {
    const rows = await c.query(`select state, attempts from "${t?.schema}".jobs where id = $1`, [
      id,
    ]);
    return rows.rows[0];
  });
}

describe("starting on a schema this rota does not know", () => {
  for (const [label, version, code] of [
    ["behind (a migration pending)", LATEST_SCHEMA_VERSION - 1, "SCHEMA_NOT_MIGRATED"],
    ["ahead (migrated by a newer rota)", LATEST_SCHEMA_VERSION + 1, "SCHEMA_TOO_NEW"],
  ] as const) {
    it(`a worker's start() fails with ${code} on a schema ${label}, and claims nothing`, async () => {
      t = await schemaAtVersion(version);
      const { id } = await t.rota.enqueue("noop", {}, { queue: "refused" });
      const worker = t.rota.worker({
        logger: silentLogger,
        queues: ["refused"],
        tasks: { noop: async () => {} },
      });
      const error = await worker.start().catch((e: unknown) => e);
      expect(error).toMatchObject({ code, details: { version } });
      expect(worker.held).toBe(0);
      expect(await jobState(id)).toEqual({ state: "available", attempts: 0 });
      await worker.stop();
    });

    it(`an orchestrator's start() fails with ${code} on a schema ${label}, and takes no lease`, async () => {
      t = await schemaAtVersion(version);
      const orchestrator = t.rota.orchestrator({ leaseName: "refused" });
      await expect(orchestrator.start()).rejects.toMatchObject({ code });
      expect(orchestrator.isLeader).toBe(false);
      const leases = await withClient((c) =>
        c.query(`select count(*)::int as n from "${t?.schema}".leases`),
      );
      expect(leases.rows[0].n).toBe(0);
      await orchestrator.stop();
    });
  }

  it("a schema never migrated refuses both with SCHEMA_NOT_MIGRATED", async () => {
    t = await migratedSchema({ migrate: false });
    const worker = t.rota.worker({ logger: silentLogger, tasks: { noop: async () => {} } });
    await expect(worker.start()).rejects.toMatchObject({
      code: "SCHEMA_NOT_MIGRATED",
      details: { version: 0 },
    });
    await expect(t.rota.orchestrator().start()).rejects.toMatchObject({
      code: "SCHEMA_NOT_MIGRATED",
    });
    await worker.stop();
  });

  it("once the schema is current again both start, and the job refused before runs", async () => {
    t = await schemaAtVersion(LATEST_SCHEMA_VERSION - 1);
    const { id } = await t.rota.enqueue("noop", {}, { queue: "later" });
    const tasks = { noop: async () => {} };
    const refused = t.rota.worker({ logger: silentLogger, queues: ["later"], tasks });
    await expect(refused.start()).rejects.toMatchObject({ code: "SCHEMA_NOT_MIGRATED" });
    await refused.stop();

    // The last migration recorded again (its objects were never dropped).
    await withClient((c) =>
      c.query(`insert into "${t?.schema}".migrations (version, name) values ($1, 'back')`, [
        LATEST_SCHEMA_VERSION,
      ]),
    );
    const ran = nextEvent(t.rota.events, "job:run:success", (e) => e.id === id);
    const worker = t.rota.worker({ logger: silentLogger, queues: ["later"], tasks });
    await worker.start();
    const orchestrator = t.rota.orchestrator({ leaseName: "later" });
    const led = nextEvent(t.rota.events, "leader:acquired", (e) => e.lease === "later");
    await orchestrator.start();
    await Promise.all([ran, led]);
    await Promise.all([worker.stop(), orchestrator.stop()]);
  });

  it("a database that cannot be asked yet does not refuse the start (the loops retry, as before)", async () => {
    const rota = new Rota({ connection: "postgres://root@127.0.0.1:1/x" });
    try {
      const worker = rota.worker({ logger: silentLogger, tasks: { noop: async () => {} } });
      await worker.start();
      const orchestrator = rota.orchestrator();
      await orchestrator.start();
    } finally {
      await rota.close();
    }
  });
});
