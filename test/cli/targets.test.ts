// `rota schedules add --window/--distribution/--target-source`, `rota
// schedules targets add|rm|list|count`, `upcoming --target` and `plan`, each
// with --json, against a real PostgreSQL.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, ROTA_BIN, runCli, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
let dir: string;
const flags = () => ["--schema", t.schema, "--database-url", t.url];
const cli = (...args: string[]) => runCli([...args, ...flags()]);
const json = async (...args: string[]) => {
  const result = await cli(...args, "--json");
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
};
beforeAll(async () => {
  t = await migratedSchema();
  dir = mkdtempSync(join(tmpdir(), "rota-targets-"));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await t.drop();
});

describe("rota schedules targets", () => {
  it("add from a file and from stdin, count, list, upcoming --target and plan, with --json", async () => {
    const added = await json(
      "schedules",
      "add",
      "scan",
      "--task",
      "scan",
      "--cron",
      "0 * * * *",
      "--window",
      "1h",
      "--distribution",
      "batches:50/1m",
    );
    expect(added.schedule).toMatchObject({ window_ms: 3_600_000, distribution: "batches" });
    const file = join(dir, "keys.txt");
    writeFileSync(file, `${Array.from({ length: 2_000 }, (_, i) => `proj-${i}`).join("\n")}\n\n`);
    expect(await json("schedules", "targets", "add", "scan", "--file", file)).toEqual({
      added: 2_000,
      updated: 0,
      existing: 0,
    });
    // Again, and through stdin: nothing changes.
    const child = spawn(
      process.execPath,
      [ROTA_BIN, "schedules", "targets", "add", "scan", "--file", "-", "--json", ...flags()],
      { env: withoutDatabaseUrl(), stdio: ["pipe", "pipe", "pipe"] },
    );
    child.stdin.end("proj-1\nproj-2\nproj-2000\n");
    const piped = await collect(child);
    expect(piped.code, piped.stderr).toBe(0);
    expect(JSON.parse(piped.stdout)).toEqual({ added: 1, updated: 0, existing: 2 });
    expect(piped.stderr).toContain("targets add scan: 3");
    expect(await json("schedules", "targets", "count", "scan")).toEqual({
      name: "scan",
      targets: 2_001,
    });
    const page = await json(
      "schedules",
      "targets",
      "list",
      "scan",
      "--limit",
      "2",
      "--after",
      "proj-1",
    );
    expect(page.map((p: { key: string }) => p.key)).toEqual(["proj-10", "proj-100"]);
    expect(Object.keys(page[0])).toEqual(
      expect.arrayContaining(["key", "payload", "enabled", "next_run_at", "offset_ms"]),
    );
    const upcoming = await json(
      "schedules",
      "upcoming",
      "scan",
      "--target",
      "proj-7",
      "--limit",
      "2",
    );
    expect(upcoming).toHaveLength(2);
    for (const run of upcoming) {
      expect(Object.keys(run)).toEqual(
        expect.arrayContaining(["run_at", "target_key", "offset_ms", "state"]),
      );
      expect(run.target_key).toBe("proj-7");
      expect(new Date(run.run_at).getTime() - new Date(run.occurrence_at).getTime()).toBe(
        run.offset_ms,
      );
    }
    expect(upcoming.map((r: { state: string }) => r.state)).toEqual(["scheduled", "computed"]);
    const plan = await json("schedules", "plan", "scan");
    // The written cadence has the first 2,000 (a target added later joins the next one).
    expect(plan).toMatchObject({ window_ms: 3_600_000, targets: 2_000, materialized: true });
    expect(plan.per_minute).toHaveLength(60);
    expect(Math.max(...plan.per_minute.map((m: { count: number }) => m.count))).toBe(50);
    const sum = (p: { per_minute: { count: number }[] }) =>
      p.per_minute.reduce((n, m) => n + m.count, 0);
    expect(sum(plan)).toBe(2_000);
    // The next cadence, not written yet: computed by the same placement.
    const next = await json(
      "schedules",
      "plan",
      "scan",
      "--occurrence",
      new Date(new Date(plan.occurrence).getTime() + 3_600_000).toISOString(),
    );
    expect(next).toMatchObject({ targets: 2_001, materialized: false });
    expect(sum(next)).toBe(2_001);
    expect(next.per_minute.map((m: { count: number }) => m.count).slice(0, 41)).toEqual([
      ...Array(40).fill(50),
      1,
    ]);
    const text = await cli("schedules", "plan", "scan");
    expect(text.stdout).toContain("2000 run(s) of the cadence");
    expect(await json("schedules", "targets", "rm", "scan", "proj-1", "proj-2")).toEqual({
      removed: 2,
      removed_executions: 2,
    });
  });

  it("bad input: a typed error, a non-zero exit, nothing written", async () => {
    const cases: [string[], string][] = [
      [
        ["schedules", "add", "w", "--task", "t", "--cron", "0 * * * *", "--window", "soon"],
        "INVALID_OPTION",
      ],
      [
        ["schedules", "add", "w", "--task", "t", "--cron", "0 * * * *", "--distribution", "spread"],
        "INVALID_OPTION",
      ],
      [
        [
          "schedules",
          "add",
          "w",
          "--task",
          "t",
          "--cron",
          "0 * * * *",
          "--target-source",
          "select 1",
        ],
        "INVALID_TARGET_SOURCE",
      ],
      [
        ["schedules", "targets", "add", "scan", "--file", join(dir, "missing.txt")],
        "INVALID_OPTION",
      ],
      [["schedules", "targets", "rm", "scan"], "INVALID_OPTION"],
      [["schedules", "upcoming", "scan", "--target", "nope"], "TARGET_NOT_FOUND"],
      [["schedules", "plan", "scan", "--occurrence", "2026-01-01T00:30:00Z"], "INVALID_OPTION"],
    ];
    for (const [args, code] of cases) {
      const result = await cli(...args);
      expect(result.code, args.join(" ")).toBe(1);
      expect(result.stderr).toContain(`[${code}]`);
    }
    expect(await json("schedules", "list", "--prefix", "w")).toEqual([]);
    expect(await json("schedules", "targets", "count", "scan")).toEqual({
      name: "scan",
      targets: 1_999,
    });
  });
});
