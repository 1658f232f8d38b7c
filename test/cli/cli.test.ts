import { afterAll, describe, expect, it } from "vitest";
import { LATEST_SCHEMA_VERSION } from "../../src/db/migrate.js";
import { runCli } from "../helpers/cli.js";
import { databaseUrl, dropSchema, uniqueSchema } from "../helpers/database.js";

const schema = uniqueSchema("cli");
afterAll(() => dropSchema(databaseUrl(), schema));

describe("rota CLI", () => {
  it("--help lists the commands and exits 0", async () => {
    const result = await runCli(["--help"]);
    expect(result.code).toBe(0);
    for (const command of ["migrate", "doctor", "dev"]) expect(result.stdout).toContain(command);
  });

  it("an unknown command prints help and exits non-zero", async () => {
    const result = await runCli(["frobnicate"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown command");
    expect(result.stderr).toContain("Usage: rota");
  });

  it("a bad option prints the command's help and exits non-zero", async () => {
    const result = await runCli(["doctor", "--bogus"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option '--bogus'");
    expect(result.stderr).toContain("Usage: rota doctor");
  });

  it("a bad schema name is refused with a clear error and nothing is created", async () => {
    const result = await runCli([
      "migrate",
      "--schema",
      "x; drop table y",
      "--database-url",
      databaseUrl(),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("INVALID_SCHEMA_NAME");
    expect(result.stderr).toMatch(/lower-case letters/);
  });

  it("a bad database URL is refused with a clear error", async () => {
    const notUrl = await runCli(["migrate", "--database-url", "not a url"]);
    expect(notUrl.code).toBe(1);
    expect(notUrl.stderr).toContain("INVALID_DATABASE_URL");
    const wrongScheme = await runCli(["migrate", "--database-url", "mysql://root@localhost/db"]);
    expect(wrongScheme.code).toBe(1);
    expect(wrongScheme.stderr).toMatch(/scheme is "mysql:"/);
    const unreachable = await runCli([
      "migrate",
      "--database-url",
      "postgres://root:secret@127.0.0.1:1/x",
    ]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("DATABASE_UNREACHABLE");
    expect(unreachable.stderr).not.toContain("secret");
  });

  it("no database URL at all is an actionable error", async () => {
    const result = await runCli(["migrate"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--database-url/);
  });

  it("doctor --json prints one JSON object and fails while migrations are pending", async () => {
    const before = await runCli([
      "doctor",
      "--json",
      "--schema",
      schema,
      "--database-url",
      databaseUrl(),
    ]);
    expect(before.code).toBe(1);
    const report = JSON.parse(before.stdout);
    expect(report).toMatchObject({ ok: false, reachable: true, schema_version: 0 });
    expect(report.postgres_version).toMatch(/^\d+/);
    expect(report.pending_migrations).toHaveLength(LATEST_SCHEMA_VERSION);

    expect(
      (await runCli(["migrate", "--schema", schema, "--database-url", databaseUrl()])).code,
    ).toBe(0);

    const after = await runCli([
      "doctor",
      "--json",
      "--schema",
      schema,
      "--database-url",
      databaseUrl(),
    ]);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({
      ok: true,
      schema_version: LATEST_SCHEMA_VERSION,
      pending_migrations: [],
    });
  });

  it("doctor --json reports an unreachable database as not ok", async () => {
    const result = await runCli([
      "doctor",
      "--json",
      "--database-url",
      "postgres://root@127.0.0.1:1/x",
    ]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      ok: false,
      reachable: false,
      postgres_version: null,
      schema_version: null,
    });
    expect(report.problems[0].code).toBe("DATABASE_UNREACHABLE");
  });
});

describe("rota bench", () => {
  it("checks its flags (declared with the harness's) and exits 2 on a bad one", async () => {
    const zero = await runCli(["bench", "--jobs", "0"]);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain("Expected a positive whole number");
    const unknown = await runCli(["bench", "--systems", "rota,frob"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown "frob"');
    // --jobs is `rota bench`'s: given after `scheduler` it must not be lost silently.
    const misplaced = await runCli(["bench", "scheduler", "--jobs", "5"]);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain("--jobs is not an option of this benchmark");
    // Both have --workloads: the scheduler's names pass `rota bench` and its harness refuses them.
    const scheduler = await runCli(["bench", "--workloads", "materialize_targets"]);
    expect(scheduler.code).toBe(2);
    expect(scheduler.stderr).toContain('Unknown "materialize_targets"');
  });

  it("passes its flags to the harness: --json, --systems, --workloads, --single-seconds", async () => {
    const result = await runCli([
      "--database-url",
      databaseUrl(),
      "bench",
      "--json",
      "--systems",
      "pg",
      "--workloads",
      "insert_commit_ceiling",
      "--single-seconds",
      "0.2",
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.settings).toMatchObject({
      systems: ["pg"],
      workloads: ["insert_commit_ceiling"],
      single_seconds: 0.2,
      database: "DATABASE_URL",
    });
    expect(report.results).toEqual([
      expect.objectContaining({ system: "pg", workload: "insert_commit_ceiling" }),
    ]);
  }, 60_000);

  it("process_limited: rota alone (the peers skip it), at most the limit of 5 running across both workers", async () => {
    const result = await runCli([
      "--database-url",
      databaseUrl(),
      "bench",
      "--json",
      "--systems",
      "rota,graphile-worker",
      "--workloads",
      "process_limited",
      "--jobs",
      "200",
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(Object.keys(report.systems)).toEqual(["rota"]);
    // Reached, never passed.
    expect(report.results).toEqual([
      expect.objectContaining({
        system: "rota",
        workload: "process_limited",
        jobs: 200,
        complete: true,
        max_concurrency: 5,
        concurrency_limit: 5,
        limit_exceeded: false,
      }),
    ]);
    expect(report.notes).toEqual([]);
  }, 60_000);

  it("scheduler: --json counts where `rota bench` takes it, and the sizes pass on", async () => {
    const result = await runCli([
      "bench",
      "scheduler",
      "--json",
      "--database-url",
      databaseUrl(),
      "--schedules",
      "200",
      "--due",
      "20",
      "--rounds",
      "1",
      "--lateness-schedules",
      "2",
      "--lateness-seconds",
      "2",
      "--targets",
      "200",
      "--failover-seconds",
      "0",
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.settings).toMatchObject({ schedules: 200, due: 20, rounds: 1, targets: 200 });
    expect(report.results.map((r: { workload: string }) => r.workload)).toEqual([
      "materialize_20_of_200",
      "materialize_20_of_20",
      "materialize_targets_200",
      "materialize_targets_200",
      "lateness",
    ]);
  }, 120_000);

  it("scheduler: --workloads materialize_targets plans one fan-out cadence per round and strategy", async () => {
    const result = await runCli([
      "--database-url",
      databaseUrl(),
      "bench",
      "scheduler",
      "--json",
      "--workloads",
      "materialize_targets",
      "--targets",
      "150",
      "--distributions",
      "spread",
      "--rounds",
      "2",
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.settings).toMatchObject({
      workloads: ["materialize_targets"],
      distributions: ["spread"],
    });
    expect(report.results).toEqual([
      expect.objectContaining({
        workload: "materialize_targets_150",
        distribution: "spread",
        targets: 150,
        executions: 150,
        parts: expect.objectContaining({ pages: 1 }),
      }),
    ]);
    expect(report.results[0].materialize_ms_rounds).toHaveLength(2);
    expect(report.results[0].second_pass_ms_rounds).toHaveLength(2);
  }, 60_000);
});
