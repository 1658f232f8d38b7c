import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TableHealthRow } from "../../src/db/queries/vacuum.js";
import {
  DEFAULT_VACUUM_THRESHOLDS,
  type DiagnosisWarning,
  tableWarnings,
} from "../../src/vacuum-health.js";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(async () => {
  await t.drop();
});

const doctorArgs = () => ["doctor", "--schema", t.schema, "--database-url", t.url];

describe("diagnose() warns about what holds vacuum back", () => {
  it("names a transaction held open on another connection, with its pid and age", async () => {
    const held = new pg.Client(t.url);
    await held.connect();
    try {
      await held.query("begin");
      // A transaction id: from here on vacuum keeps every row that dies.
      await held.query("select txid_current()");
      const pid = (await held.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]
        ?.pid;

      // Threshold 0: every open transaction is old enough, so nothing waits.
      const report = await t.rota.diagnose({ transactionAgeMs: 0 });
      expect(report.ok).toBe(true);
      const warning = report.warnings.find((w) => w.code === "LONG_TRANSACTION" && w.pid === pid);
      expect(warning?.ageMs).toBeGreaterThanOrEqual(0);
      expect(warning?.message).toContain(`transaction of pid ${pid} (`);
      expect(warning?.message).toContain("idle in transaction");
      expect(warning?.message).toContain("vacuum removes no row that died since it began");
      expect(warning?.message).toContain(`pg_terminate_backend(${pid})`);

      // Under the default threshold (5 minutes) it is not old enough.
      const lenient = await t.rota.diagnose();
      expect(lenient.warnings.some((w) => w.pid === pid)).toBe(false);

      // `rota doctor`: warnings in the JSON and as lines, exit 0 all the same.
      const json = await runCli([...doctorArgs(), "--transaction-age-ms", "0", "--json"]);
      expect(json.code).toBe(0);
      const parsed = JSON.parse(json.stdout);
      expect(parsed.ok).toBe(true);
      const printed = parsed.warnings.find(
        (w: { code: string; pid?: number }) => w.code === "LONG_TRANSACTION" && w.pid === pid,
      );
      expect(printed.age_ms).toBeGreaterThanOrEqual(0);
      const text = await runCli([...doctorArgs(), "--transaction-age-ms", "0"]);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(
        new RegExp(
          `warn transaction of pid ${pid} \\(.*open for [0-9.]+ s.*\\[LONG_TRANSACTION\\]`,
        ),
      );
      expect(text.stdout).toMatch(/healthy \(\d+ warning\(s\)\)/);
    } finally {
      await held.end();
    }
  });

  it("warns about a table full of dead rows, and one autovacuum is disabled on", async () => {
    const app = new pg.Client(t.url);
    await app.connect();
    try {
      const jobs = `${pg.escapeIdentifier(t.schema)}.jobs`;
      // Without autovacuum on the table, its dead rows stay for the test to see.
      await app.query(`alter table ${jobs} set (autovacuum_enabled = false)`);
      await app.query(
        `insert into ${jobs} (task, run_at) select 'bloat.test', now() from generate_series(1, 3000)`,
      );
      await app.query(`delete from ${jobs}`);
      // The counts reach pg_stat_user_tables before this statement returns.
      await app.query("select pg_stat_force_next_flush()");

      const report = await t.rota.diagnose({ deadTuples: 1000 });
      expect(report.ok).toBe(true);
      const table = `${t.schema}.jobs`;
      const bloat = report.warnings.find((w) => w.code === "TABLE_BLOAT");
      expect(bloat).toMatchObject({ table, deadTuples: 3000, liveTuples: 0 });
      expect(bloat?.message).toContain(`table ${table} holds 3,000 dead rows (100% of its rows)`);
      const disabled = report.warnings.find(
        (w) => w.code === "AUTOVACUUM_OFF" && w.table === table,
      );
      expect(disabled?.message).toContain(`ALTER TABLE ${table} RESET (autovacuum_enabled)`);

      // 3,000 dead rows are under the default 100,000.
      const lenient = await t.rota.diagnose();
      expect(lenient.warnings.some((w) => w.code === "TABLE_BLOAT")).toBe(false);

      // A server without autovacuum (as the CI one is) says so, once.
      const server = await app.query<{ autovacuum: string }>("show autovacuum");
      const serverOff = report.warnings.filter((w) => w.code === "AUTOVACUUM_OFF" && !w.table);
      expect(serverOff).toHaveLength(server.rows[0]?.autovacuum === "off" ? 1 : 0);

      const text = await runCli([...doctorArgs(), "--dead-tuples", "1000"]);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain(`warn table ${table} holds 3,000 dead rows`);
      expect(text.stdout).toContain("[TABLE_BLOAT]");

      await app.query(`vacuum ${jobs}`);
      await app.query("select pg_stat_force_next_flush()");
      const vacuumed = await t.rota.diagnose({ deadTuples: 1000 });
      expect(vacuumed.warnings.some((w) => w.code === "TABLE_BLOAT")).toBe(false);
    } finally {
      await app.end();
    }
  });

  it("refuses thresholds it cannot use, naming them", async () => {
    const report = await t.rota.diagnose({ deadFraction: 2 });
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ code: "INVALID_OPTION" });
    expect(report.problems[0]?.message).toContain("deadFraction");
    const cli = await runCli([...doctorArgs(), "--dead-fraction", "lots"]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("--dead-fraction");
    expect(cli.stderr).toContain("INVALID_OPTION");
  });
});

describe("a table past autovacuum's trigger", () => {
  const row = (over: Partial<TableHealthRow>): TableHealthRow => ({
    table_name: "jobs",
    live_tuples: 2_000_000,
    dead_tuples: 450_000,
    total_bytes: 0,
    index_bytes: 0,
    autovacuum_count: 3,
    vacuum_count: 0,
    last_vacuum_at: null,
    since_vacuum_ms: 2 * 3_600_000,
    autovacuum_enabled: true,
    vacuum_trigger: 400_050,
    ...over,
  });
  const codes = (warnings: DiagnosisWarning[]) => warnings.map((w) => w.code);
  const check = (over: Partial<TableHealthRow>, serverRuns = true) =>
    tableWarnings("rota", row(over), DEFAULT_VACUUM_THRESHOLDS, serverRuns);

  it("is behind when not vacuumed for longer than vacuumAgeMs, or ever", () => {
    const [behind] = check({});
    expect(behind).toMatchObject({ code: "VACUUM_BEHIND", table: "rota.jobs", ageMs: 7_200_000 });
    expect(behind?.message).toContain("past the 400,050 at which autovacuum takes it up");
    expect(behind?.message).toContain("last vacuumed 2 h 0 min ago");
    expect(check({ since_vacuum_ms: null })[0]?.message).toContain("has never been vacuumed");
  });

  it("is not while vacuumed lately, under the trigger, or when autovacuum does not run there", () => {
    expect(codes(check({ since_vacuum_ms: 60_000 }))).toEqual([]);
    expect(codes(check({ dead_tuples: 400_000 }))).toEqual([]);
    // Those say AUTOVACUUM_OFF instead (the server's once, in vacuumWarnings).
    expect(codes(check({}, false))).toEqual([]);
    expect(codes(check({ autovacuum_enabled: false }))).toEqual(["AUTOVACUUM_OFF"]);
  });

  it("is bloated only with both many dead rows and a large share of them", () => {
    expect(
      codes(check({ dead_tuples: 300_000, live_tuples: 900_000, since_vacuum_ms: 0 })),
    ).toEqual(["TABLE_BLOAT"]);
    expect(
      codes(check({ dead_tuples: 300_000, live_tuples: 5_000_000, since_vacuum_ms: 0 })),
    ).toEqual([]);
    expect(codes(check({ dead_tuples: 90_000, live_tuples: 0, since_vacuum_ms: 0 }))).toEqual([]);
  });
});
