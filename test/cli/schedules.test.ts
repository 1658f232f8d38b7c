import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
const cli = (...args: string[]) => runCli([...args, "--schema", t.schema, "--database-url", t.url]);
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("rota schedules", () => {
  it("add, get, list, upcoming --json; the same add again changes nothing", async () => {
    const add = [
      "schedules",
      "add",
      "nightly",
      "--task",
      "report.build",
      "--cron",
      "0 3 * * *",
      "--timezone",
      "Europe/Berlin",
      "--payload",
      '{"kind":"nightly"}',
      "--queue",
      "reports",
      "--json",
    ];
    const added = await cli(...add);
    expect(added.code, added.stderr).toBe(0);
    const result = JSON.parse(added.stdout);
    expect(result).toMatchObject({ outcome: "created", materialized: 3 });
    expect(result.schedule).toMatchObject({
      name: "nightly",
      timezone: "Europe/Berlin",
      queue: "reports",
    });
    const again = await cli(...add);
    expect(JSON.parse(again.stdout).outcome).toBe("unchanged");

    const upcoming = await cli("schedules", "upcoming", "nightly", "--limit", "5", "--json");
    expect(upcoming.code).toBe(0);
    const runs = JSON.parse(upcoming.stdout);
    expect(runs).toHaveLength(5);
    for (const run of runs) {
      expect(run.run_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      // 03:00 in Berlin is 01:00 or 02:00 UTC.
      expect(["01:00", "02:00"]).toContain(run.run_at.slice(11, 16));
    }
    expect(
      runs.slice(0, 3).every((r: { execution_id: string | null }) => r.execution_id !== null),
    ).toBe(true);
    expect(runs[3].state).toBe("computed");

    const from = await cli(
      "schedules",
      "upcoming",
      "nightly",
      "--limit",
      "2",
      "--from",
      "2030-01-01T00:00:00Z",
      "--json",
    );
    expect(JSON.parse(from.stdout).map((r: { run_at: string }) => r.run_at)).toEqual([
      "2030-01-01T02:00:00.000Z",
      "2030-01-02T02:00:00.000Z",
    ]);

    const list = await cli("schedules", "list", "--json");
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ name: "nightly", owner: "rota", enabled: true, paused: false }),
    ]);
    const text = await cli("schedules", "list");
    expect(text.stdout).toContain("nightly");
    const got = await cli("schedules", "get", "nightly", "--json");
    expect(JSON.parse(got.stdout)).toMatchObject({
      name: "nightly",
      cron: "0 3 * * *",
      payload: { kind: "nightly" },
    });
  });

  it("skip, trigger, history, pause, resume, rm", async () => {
    await cli(
      "schedules",
      "add",
      "tick",
      "--task",
      "t",
      "--every",
      "90m",
      "--anchor",
      "2026-01-01T00:00:00Z",
      "--json",
    );
    const skipped = await cli("schedules", "skip", "tick", "--json");
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ state: "skipped" });
    const triggered = await cli("schedules", "trigger", "tick", "--json");
    const { execution_id } = JSON.parse(triggered.stdout);
    expect(execution_id).toBeTruthy();
    const history = JSON.parse((await cli("schedules", "history", "tick", "--json")).stdout);
    expect(history.map((h: { state: string }) => h.state).sort()).toEqual([
      "available",
      "scheduled",
      "scheduled",
      "scheduled",
      "skipped",
    ]);
    const paused = await cli("schedules", "pause", "tick", "--json");
    expect(JSON.parse(paused.stdout)).toMatchObject({ paused: true });
    expect(JSON.parse((await cli("schedules", "upcoming", "tick", "--json")).stdout)).toEqual([]);
    expect(JSON.parse((await cli("schedules", "resume", "tick", "--json")).stdout)).toMatchObject({
      paused: false,
    });
    const removed = await cli("schedules", "rm", "tick", "--json");
    expect(JSON.parse(removed.stdout)).toMatchObject({ name: "tick" });
    const gone = await cli("schedules", "get", "tick", "--json");
    expect(gone.code).toBe(1);
    expect(JSON.parse(gone.stdout).error.code).toBe("SCHEDULE_NOT_FOUND");
  });

  it("bad input: a coded error, exit 1, nothing written", async () => {
    const cases: [string[], string][] = [
      [["schedules", "add", "bad", "--task", "t", "--cron", "61 * * * *"], "INVALID_CRON"],
      [["schedules", "add", "bad", "--task", "t", "--cron", "* * *"], "INVALID_CRON"],
      [["schedules", "add", "bad", "--task", "t", "--every", "soon"], "INVALID_INTERVAL"],
      [
        [
          "schedules",
          "add",
          "bad",
          "--task",
          "t",
          "--cron",
          "* * * * *",
          "--timezone",
          "Mars/Base",
        ],
        "INVALID_TIMEZONE",
      ],
      [["schedules", "add", "bad", "--task", "t"], "INVALID_SCHEDULE_SPEC"],
      [
        ["schedules", "add", "bad", "--task", "t", "--cron", "* * * * *", "--every", "1h"],
        "INVALID_SCHEDULE_SPEC",
      ],
      [
        ["schedules", "add", "bad", "--task", "t", "--cron", "* * * * *", "--payload", "{nope"],
        "INVALID_PAYLOAD",
      ],
      [
        ["schedules", "add", "bad", "--task", "t", "--cron", "* * * * *", "--queue", "no spaces"],
        "INVALID_QUEUE_NAME",
      ],
      [
        ["schedules", "add", "bad", "--task", "t", "--cron", "* * * * *", "--catch-up", "some"],
        "INVALID_OPTION",
      ],
      [
        ["schedules", "add", "bad", "--task", "t", "--cron", "* * * * *", "--horizon", "0"],
        "INVALID_OPTION",
      ],
      [
        ["schedules", "add", "bad name", "--task", "t", "--cron", "* * * * *"],
        "INVALID_SCHEDULE_NAME",
      ],
      [["schedules", "upcoming", "nowhere"], "SCHEDULE_NOT_FOUND"],
      [["schedules", "import", "--crontab", fixture("bad.crontab")], "INVALID_CRONTAB"],
    ];
    for (const [args, code] of cases) {
      const result = await cli(...args, "--json");
      expect(result.code, `${args.join(" ")}: ${result.stdout}`).toBe(1);
      expect(JSON.parse(result.stdout).error.code, args.join(" ")).toBe(code);
    }
    const imported = await cli("schedules", "import", "--crontab", fixture("bad.crontab"));
    expect(imported.stderr).toContain("line 2");
    expect(imported.stderr).toContain("line 3");
    const list = JSON.parse((await cli("schedules", "list", "--json")).stdout);
    expect(list.map((s: { name: string }) => s.name)).not.toContain("bad");
    expect(list.some((s: { name: string }) => s.name.startsWith("cron-"))).toBe(false);
    // A CLI process per case: on a loaded machine that outlasts the default minute.
  }, 120_000);

  it("import --crontab --external, then handover by percent and by name, handback", async () => {
    const importArgs = [
      "schedules",
      "import",
      "--crontab",
      fixture("legacy.crontab"),
      "--external",
      "--json",
    ];
    const imported = await cli(...importArgs);
    expect(imported.code, imported.stderr).toBe(0);
    const { imported: rows } = JSON.parse(imported.stdout);
    expect(rows).toHaveLength(3);
    expect(imported.stderr).toContain("import: 3/3");
    const external = JSON.parse(
      (await cli("schedules", "list", "--owner", "external", "--json")).stdout,
    );
    expect(external).toHaveLength(3);
    expect(external.every((s: { timezone: string }) => s.timezone === "Europe/Berlin")).toBe(true);
    const sync = external.find((s: { name: string }) => s.name.startsWith("cron-sync-inventory-"));
    const detail = JSON.parse((await cli("schedules", "get", sync.name, "--json")).stdout);
    expect(detail.payload).toEqual({
      command: "/usr/local/bin/sync-inventory --full",
      env: { MAILTO: "ops@example.com" },
    });
    // Importing again changes nothing.
    const again = JSON.parse((await cli(...importArgs)).stdout);
    expect(again.imported.every((r: { outcome: string }) => r.outcome === "unchanged")).toBe(true);

    const all = await cli("schedules", "handover", "--percent", "100", "--json");
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout).changes).toHaveLength(3);
    expect(all.stderr).toContain("handover: 3/3");
    const none = await cli("schedules", "handover", "--percent", "0", "--json");
    expect(JSON.parse(none.stdout).changes.every((c: { to: string }) => c.to === "external")).toBe(
      true,
    );
    const one = await cli("schedules", "handover", sync.name, "--json");
    expect(JSON.parse(one.stdout).changes).toEqual([
      { name: sync.name, from: "external", to: "rota" },
    ]);
    const back = await cli("schedules", "handback", sync.name, "--json");
    expect(JSON.parse(back.stdout).changes).toEqual([
      { name: sync.name, from: "rota", to: "external" },
    ]);
    const both = await cli("schedules", "handover", "x", "--percent", "5", "--json");
    expect(JSON.parse(both.stdout).error.code).toBe("INVALID_OPTION");
  });

  it("rota orchestrator --once runs one tick as leader", async () => {
    const result = await cli("orchestrator", "--once", "--json");
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ leader: true, errors: [], database_unreachable: false });
    expect(report.materialized).toMatchObject({ failed: 0 });
    // doctor shows who led; --once released the lease on its way out.
    const doctor = JSON.parse((await cli("doctor", "--json")).stdout);
    expect(doctor.leader).toMatchObject({ epoch: report.epoch, valid: false });
    expect(doctor.leader.holder).toMatch(/:\d+:/);
  });
});
