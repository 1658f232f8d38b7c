// The committed schema snapshot, src/db/schema.sql: what the migrations build,
// as pg_dump prints it, so a schema change is a readable diff in review.
//
//   npm run schema:snapshot   migrate a throwaway schema, dump it, write src/db/schema.sql
//   npm run schema:check      the same dump, compared with the file: exit 1 with a diff
//                             when the migrations and the snapshot disagree
//
// Options: --check; --if-available (with --check: print why and exit 0 when
// there is no DATABASE_URL, no pg_dump, or a PostgreSQL major other than the
// snapshot's, instead of failing; CI uses it); --src DIR (the source tree
// whose migrations are applied; default ./src); --snapshot FILE (default
// src/db/schema.sql).
//
// Needs DATABASE_URL (any database the user may create a schema in; the
// throwaway schema is dropped after) and pg_dump of the server's major
// version on PATH. Run with `node --import tsx`, as the npm scripts do.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";

const { values: options } = parseArgs({
  options: {
    check: { type: "boolean", default: false },
    "if-available": { type: "boolean", default: false },
    src: { type: "string", default: "src" },
    snapshot: { type: "string", default: "src/db/schema.sql" },
  },
});

/** The schema name the snapshot shows (rota's default). */
const SHOWN_SCHEMA = "rota";

function say(line: string): void {
  process.stderr.write(`schema snapshot: ${line}\n`);
}

/** A reason the comparison cannot be made here: a skip with --if-available, else a failure. */
function unavailable(reason: string): never {
  if (options.check && options["if-available"]) {
    say(`SKIPPED, not compared: ${reason}`);
    process.exit(0);
  }
  say(`cannot run: ${reason}`);
  process.exit(2);
}

const url = process.env.DATABASE_URL;
if (!url) unavailable("DATABASE_URL is not set (it needs a PostgreSQL and pg_dump)");

const pgDump = spawnSync("pg_dump", ["--version"], { encoding: "utf8" });
if (pgDump.error || pgDump.status !== 0) unavailable("pg_dump is not on PATH");
const dumpMajor = majorOf(pgDump.stdout);

const snapshotPath = resolve(options.snapshot);
const committed = readOrNull(snapshotPath);

const schema = `rota_snapshot_${randomBytes(5).toString("hex")}`;
const client = new pg.Client({ connectionString: url });
try {
  await client.connect();
} catch (error) {
  unavailable(`cannot connect to DATABASE_URL: ${(error as Error).message}`);
}
let dumped: string;
let migration: string;
try {
  const server = await client.query<{ major: string }>(
    "select current_setting('server_version_num')::int / 10000 as major",
  );
  const serverMajor = Number(server.rows[0]?.major);
  if (dumpMajor !== serverMajor) {
    unavailable(
      `pg_dump is version ${dumpMajor} and the server ${serverMajor}: install pg_dump ${serverMajor}`,
    );
  }
  const recorded = committed === null ? null : /PostgreSQL (\d+)\b/.exec(committed);
  if (options.check && recorded && Number(recorded[1]) !== serverMajor) {
    unavailable(
      `the snapshot was dumped from PostgreSQL ${recorded[1]} and this server is ${serverMajor}; pg_dump output differs between major versions`,
    );
  }

  // The migrations of the given source tree, applied by rota's own runner.
  const { Rota } = await import(pathToFileURL(resolve(options.src, "client.ts")).href);
  const { migrationLabel } = await import(
    pathToFileURL(resolve(options.src, "db", "migrate.ts")).href
  );
  const rota = new Rota({ connection: url, schema, poolSize: 1 });
  try {
    const applied: { version: number; name: string }[] = await rota.migrate();
    const last = applied.at(-1);
    if (!last) throw new Error("no migration was applied to the fresh schema");
    migration = migrationLabel(last);
  } finally {
    await rota.close();
  }
  const dump = spawnSync(
    "pg_dump",
    [
      "--schema-only",
      `--schema=${schema}`,
      "--no-owner",
      "--no-privileges",
      "--no-tablespaces",
      "--dbname",
      url,
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  if (dump.status !== 0) throw new Error(`pg_dump failed: ${dump.stderr || dump.error}`);
  dumped = normalize(dump.stdout, schema, migration, serverMajor);
} finally {
  await client.query(`drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
  await client.end();
}

if (!options.check) {
  if (committed === dumped) say(`${options.snapshot} is already up to date (${migration})`);
  else {
    writeFileSync(snapshotPath, dumped);
    say(`wrote ${options.snapshot} (${migration})`);
  }
} else if (committed === dumped) {
  say(`${options.snapshot} matches the migrations (${migration})`);
} else {
  say(
    committed === null
      ? `${options.snapshot} does not exist: run \`npm run schema:snapshot\` and commit it`
      : `${options.snapshot} does not match what the migrations build: if the migration change is meant, run \`npm run schema:snapshot\` and commit the file with it. Differences (- committed, + migrations):`,
  );
  if (committed !== null) process.stdout.write(diff(committed, dumped, snapshotPath));
  process.exit(1);
}

/**
 * pg_dump's text made stable and readable: the throwaway schema shown as
 * "rota", no version banner, \restrict keys (random per run), SET lines or
 * Owner/Schema noise, one blank line between objects. pg_dump already orders
 * objects deterministically (by kind, then name).
 */
function normalize(text: string, from: string, migration: string, major: number): string {
  const lines = text.replaceAll(from, SHOWN_SCHEMA).split("\n");
  const kept: string[] = [];
  for (const line of lines) {
    if (/^\\(un)?restrict /.test(line)) continue;
    if (/^SET |^SELECT pg_catalog\.set_config\(/.test(line)) continue;
    if (/^-- (PostgreSQL database dump|Dumped from |Dumped by )/.test(line)) continue;
    if (line === "--") continue;
    const name = /^-- Name: (.*); Type: ([^;]+); Schema: [^;]*; Owner: .*$/.exec(line);
    kept.push(name ? `-- ${name[2]}: ${name[1]}` : line);
  }
  const body = kept
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
  return `${[
    `-- rota's schema after migration ${migration}, as pg_dump --schema-only prints it`,
    `-- (PostgreSQL ${major}) for a schema named "${SHOWN_SCHEMA}". Written by \`npm run schema:snapshot\`;`,
    "-- CI (`npm run schema:check`) fails when the migrations no longer build exactly this.",
    "-- Do not edit by hand: change the schema with a new migration in src/db/migrations/.",
  ].join("\n")}\n\n${body}\n`;
}

/** A unified diff by diff(1) when the machine has it, else the first line that differs. */
function diff(committed: string, dumped: string, path: string): string {
  const dir = mkdtempSync(join(tmpdir(), "rota-schema-"));
  try {
    const fresh = join(dir, "schema.sql");
    writeFileSync(fresh, dumped);
    const result = spawnSync(
      "diff",
      ["-u", "--label", `${options.snapshot} (committed)`, "--label", "(migrations)", path, fresh],
      { encoding: "utf8" },
    );
    if (!result.error) return result.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const a = committed.split("\n");
  const b = dumped.split("\n");
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `first difference at line ${i + 1}:\n- ${a[i] ?? "(end of file)"}\n+ ${b[i] ?? "(end of file)"}\n`;
}

function majorOf(version: string): number {
  const match = /(\d+)(?:\.\d+)?/.exec(version);
  return match ? Number(match[1]) : Number.NaN;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}
