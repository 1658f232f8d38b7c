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
  it("starts an embedded PostgreSQL, migrates, runs the demo jobs and the dashboard, and stops it cleanly on Ctrl-C", async () => {
    const child = startCli(["dev", "--port", "0"], { cwd });
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
    // The demo's data: a fan-out to 1,000 projects, a paused queue.
    const targets = await client.query("select count(*)::int as n from rota.schedule_targets");
    expect(targets.rows[0].n).toBe(1_000);
    const paused = await client.query("select name from rota.queues where paused");
    expect(paused.rows.map((r) => r.name)).toEqual(["demo.exports"]);
    await client.end();

    // The dashboard, behind the generated token its login link carries.
    const link = /dashboard on (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(output)?.[1];
    expect(link).toBeDefined();
    const origin = new URL(link as string).origin;
    expect((await fetch(`${origin}/`)).status).toBe(401);
    const login = await fetch(link as string, { redirect: "manual" });
    expect(login.status).toBe(303);
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const overview = await fetch(`${origin}/`, { headers: { cookie } });
    expect(overview.status).toBe(200);
    expect(await overview.text()).toContain("demo.exports");

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
