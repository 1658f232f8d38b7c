import { afterAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { assertSchemaCurrent, LATEST_SCHEMA_VERSION } from "../../src/db/migrate.js";
import { isRotaError } from "../../src/errors.js";
import { runCli, withoutDatabaseUrl } from "../helpers/cli.js";
import { databaseUrl, dropSchema, uniqueSchema, withClient } from "../helpers/database.js";

const schemas: string[] = [];
function freshSchema(): string {
  const schema = uniqueSchema("mig");
  schemas.push(schema);
  return schema;
}
afterAll(async () => {
  for (const schema of schemas) await dropSchema(databaseUrl(), schema);
});

describe("migrations", () => {
  it("five `rota migrate` processes at once leave one schema at the latest version", async () => {
    const schema = freshSchema();
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: databaseUrl() };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => runCli(["migrate", "--schema", schema, "--json"], { env })),
    );
    for (const result of results) {
      // Every line is a migration applied (a migration's name may hold
      // "error": 0019_job_error_history), none a failure.
      for (const line of result.stderr.split("\n").filter(Boolean)) {
        expect(line).toMatch(/^(\S+ )?applied \d{4}_\w+/);
      }
      expect(result.code, result.stderr + result.stdout).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, version: LATEST_SCHEMA_VERSION });
    }
    // Every migration was applied by exactly one of the five.
    const appliedCounts = results.map((r) => JSON.parse(r.stdout).applied.length);
    expect(appliedCounts.reduce((a, b) => a + b, 0)).toBe(LATEST_SCHEMA_VERSION);
    const rows = await withClient((c) =>
      c.query(`select version from "${schema}".migrations order by version`),
    );
    expect(rows.rows.map((r) => r.version)).toEqual(
      Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
    );
  });

  it("is idempotent and reports pending migrations before it runs", async () => {
    const rota = new Rota({ connection: databaseUrl(), schema: freshSchema() });
    try {
      const before = await rota.schemaStatus();
      expect(before.version).toBe(0);
      expect(before.pending).toHaveLength(LATEST_SCHEMA_VERSION);
      await expect(assertSchemaCurrent(databaseOf(rota))).rejects.toMatchObject({
        code: "SCHEMA_NOT_MIGRATED",
      });
      expect(await rota.migrate()).toHaveLength(LATEST_SCHEMA_VERSION);
      expect(await rota.migrate()).toHaveLength(0);
      await assertSchemaCurrent(databaseOf(rota));
    } finally {
      await rota.close();
    }
  });

  it("refuses to run against a schema newer than it knows", async () => {
    const schema = freshSchema();
    const rota = new Rota({ connection: databaseUrl(), schema });
    try {
      await rota.migrate();
      await withClient((c) =>
        c.query(
          `insert into "${schema}".migrations (version, name) values ($1, 'from_the_future')`,
          [LATEST_SCHEMA_VERSION + 1],
        ),
      );
      const error = await assertSchemaCurrent(databaseOf(rota)).catch((e: unknown) => e);
      expect(isRotaError(error, "SCHEMA_TOO_NEW")).toBe(true);
      expect((error as Error).message).toMatch(/newer than/);
      await expect(rota.migrate()).rejects.toMatchObject({ code: "SCHEMA_TOO_NEW" });

      const cli = await runCli(["migrate", "--schema", schema, "--database-url", databaseUrl()]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain("SCHEMA_TOO_NEW");
    } finally {
      await rota.close();
    }
  });

  it("sets the jobs table's autovacuum to take it up at 1% of its rows, not 20%", async () => {
    const rota = new Rota({ connection: databaseUrl(), schema: freshSchema() });
    try {
      await rota.migrate();
      const options = await withClient((c) =>
        c.query(
          `select c.reloptions from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $1 and c.relname = 'jobs'`,
          [rota.schema],
        ),
      );
      expect(options.rows[0].reloptions).toEqual(["autovacuum_vacuum_scale_factor=0.01"]);
    } finally {
      await rota.close();
    }
  });
});
