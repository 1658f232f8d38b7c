import { spawn, spawnSync } from "node:child_process";
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type CliResult, collect, withoutDatabaseUrl } from "../helpers/cli.js";
import { databaseUrl } from "../helpers/database.js";

// scripts/schema-snapshot.ts, the check CI runs: src/db/schema.sql must be
// what the migrations build. It needs pg_dump; without it these tests skip.
const repo = fileURLToPath(new URL("../../", import.meta.url));
const hasPgDump = !spawnSync("pg_dump", ["--version"]).error;

function snapshotScript(args: string[]): Promise<CliResult> {
  return collect(
    spawn(process.execPath, ["--import", "tsx", "scripts/schema-snapshot.ts", ...args], {
      cwd: repo,
      env: { ...withoutDatabaseUrl(), DATABASE_URL: databaseUrl() },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

const copies: string[] = [];
afterAll(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

/** A copy of src/ whose migrations a test may change, importable as the real one is. */
function sourceCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "rota-src-"));
  copies.push(dir);
  cpSync(join(repo, "src"), join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"));
  return join(dir, "src");
}

describe.skipIf(!hasPgDump)("the schema snapshot check", () => {
  it("passes: the committed src/db/schema.sql is what the migrations build", async () => {
    const result = await snapshotScript(["--check"]);
    expect(result.stderr).toContain("matches the migrations");
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  it("fails with a diff when a migration is edited and the snapshot is not", async () => {
    const src = sourceCopy();
    const file = join(src, "db/migrations/0002_jobs.sql");
    const sql = readFileSync(file, "utf8");
    expect(sql).toContain("max_attempts integer not null default 25");
    writeFileSync(
      file,
      sql.replace(
        "max_attempts integer not null default 25",
        "max_attempts integer not null default 30",
      ),
    );
    const result = await snapshotScript(["--check", "--src", src]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("does not match what the migrations build");
    expect(result.stdout).toContain("-    max_attempts integer DEFAULT 25 NOT NULL,");
    expect(result.stdout).toContain("+    max_attempts integer DEFAULT 30 NOT NULL,");
  });

  it("fails when a migration is added without a new snapshot", async () => {
    const src = sourceCopy();
    // The number after the last migration rota has.
    const next = String(readdirSync(join(src, "db/migrations")).length + 1).padStart(4, "0");
    writeFileSync(
      join(src, `db/migrations/${next}_snapshot_probe.sql`),
      "create index jobs_probe on {{schema}}.jobs (task);\n",
    );
    const result = await snapshotScript(["--check", "--src", src]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`+-- rota's schema after migration ${next}_snapshot_probe`);
    expect(result.stdout).toContain("+CREATE INDEX jobs_probe ON rota.jobs USING btree (task);");
  });
});
