import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { collect, runCli, startCli, waitForOutput } from "../helpers/cli.js";

const cwd = mkdtempSync(join(tmpdir(), "rota-dev-"));
// The embedded server runs as the "postgres" user when the tests run as root.
chmodSync(cwd, 0o755);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe("rota dev with no database URL", () => {
  it("starts an embedded PostgreSQL, migrates, runs the demo jobs, and stops it cleanly on Ctrl-C", async () => {
    const child = startCli(["dev"], { cwd });
    const done = collect(child);
    const output = await waitForOutput(child, "Ctrl-C stops it", 120_000);
    // The demo worker runs the demo jobs.
    await waitForOutput(child, "succeeded on attempt 1", 30_000);
    expect(output).toMatch(/embedded PostgreSQL listening on 127\.0\.0\.1:\d+/);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(output)?.[1]);

    // The server is real: connect and find the migrated schema.
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "postgres",
      password: "rota",
      database: "postgres",
    });
    await client.connect();
    const version = await client.query("select max(version) as v from rota.migrations");
    expect(version.rows[0].v).toBeGreaterThanOrEqual(1);
    await client.end();

    const pidFile = join(cwd, ".rota/pgdata/postmaster.pid");
    expect(existsSync(pidFile)).toBe(true);
    const postgresPid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);

    child.kill("SIGINT");
    const result = await done;
    expect(result.code).toBe(0);
    expect(result.stderr).toContain("embedded PostgreSQL stopped");
    // A clean shutdown removes the pid file and the server process is gone.
    expect(existsSync(pidFile)).toBe(false);
    expect(() => process.kill(postgresPid, 0)).toThrow();
  });

  it("refuses a bad schema name before starting a server for it", async () => {
    const result = await runCli(["dev", "--schema", "Bad-Name!"], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("INVALID_SCHEMA_NAME");
    expect(result.stderr).not.toContain("starting the embedded PostgreSQL");
  });
});
