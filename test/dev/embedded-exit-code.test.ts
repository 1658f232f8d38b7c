import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { collect, withoutDatabaseUrl } from "../helpers/cli.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
// Its own folder, so the embedded server here never shares a data folder
// with one the suite itself may be running on.
const cwd = mkdtempSync(join(tmpdir(), "rota-exit-"));
// The embedded server runs as the "postgres" user when the tests run as root.
chmodSync(cwd, 0o755);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe("a process that started the embedded PostgreSQL keeps its exit code", () => {
  it("a failing test run through the embedded path exits non-zero", async () => {
    const child = spawn(
      process.execPath,
      [
        join(repo, "node_modules/vitest/vitest.mjs"),
        "run",
        "--config",
        join(repo, "test/fixtures/failing-suite/vitest.config.ts"),
      ],
      { cwd, env: withoutDatabaseUrl(), stdio: ["ignore", "pipe", "pipe"] },
    );
    const result = await collect(child);
    const output = result.stdout + result.stderr;
    expect(output).toContain("using an embedded PostgreSQL");
    expect(output).toMatch(/1 failed/);
    expect(result.code).toBe(1);
  }, 180_000);

  it("a script that sets a failing exit code after stopping the server exits with it", async () => {
    const script = `
      const { startEmbeddedPostgres } = await import(${JSON.stringify(join(repo, "dist/dev/embedded.js"))});
      const server = await startEmbeddedPostgres({ dataDir: ".rota/test-pgdata" });
      await server.stop();
      process.exitCode = 3;
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd,
      env: withoutDatabaseUrl(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const result = await collect(child);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(3);
  }, 180_000);

  it("a process that exits without stopping the server takes the server down with it", async () => {
    const script = `
      const { startEmbeddedPostgres } = await import(${JSON.stringify(join(repo, "dist/dev/embedded.js"))});
      await startEmbeddedPostgres({ dataDir: ".rota/test-pgdata" });
      process.exit(0);
    `;
    const result = await collect(
      spawn(process.execPath, ["--input-type=module", "-e", script], {
        cwd,
        env: withoutDatabaseUrl(),
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    expect(result.code).toBe(0);
    const pidFile = join(cwd, ".rota/test-pgdata/postmaster.pid");
    // A fast shutdown removes the pid file once the server is gone.
    await expect.poll(() => existsSync(pidFile), { timeout: 30_000 }).toBe(false);
  }, 180_000);
});
