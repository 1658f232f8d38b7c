import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliOn } from "../helpers/cli.js";
import { dropSchema, migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
const { cli, json } = cliOn(() => t);
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const gwCrontab = join(tmpdir(), `rota-gw-${process.pid}.crontab`);

beforeAll(async () => {
  t = await migratedSchema();
  await writeFile(
    gwCrontab,
    "0 4 * * 1 send_weekly_email ?fill=2d&max=10 {onlyIf: 'weekly'}\n*/10 * * * * sync_feeds ?queue=feeds\n",
  );
});
afterAll(() => t.drop());

describe("rota schedules import --from", () => {
  it("graphile-worker: --dry-run reports and writes nothing; --json lists what did not map", async () => {
    const args = ["schedules", "import", "--from", "graphile-worker", "--crontab", gwCrontab];
    const dry = await json(...args, "--dry-run");
    expect(dry).toMatchObject({ from: "graphile-worker", dry_run: true, owner: "external" });
    expect(dry.imported.map((s: { outcome: string }) => s.outcome)).toEqual(["created", "created"]);
    expect(await json("schedules", "list")).toEqual([]);

    const done = await json(...args);
    expect(done.dry_run).toBe(false);
    expect(done.imported[1]).toMatchObject({
      name: "graphile-worker:sync_feeds",
      source: "line 2",
      task: "sync_feeds",
      unmapped: [expect.objectContaining({ option: "queue", value: "feeds" })],
    });
    const text = await cli(...args);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("graphile-worker:sync_feeds  unchanged");
    expect(text.stdout).toContain('not mapped: queue="feeds"');
    expect(text.stderr).toContain("import: 2/2");
    const listed = await json("schedules", "list", "--owner", "external");
    expect(listed.map((s: { name: string }) => s.name)).toEqual([
      "graphile-worker:send_weekly_email",
      "graphile-worker:sync_feeds",
    ]);
  });

  it("pg-boss: reads its tables in --pg-boss-schema", async () => {
    const bossSchema = `pgboss_${t.schema}`;
    const boss = new PgBoss({
      connectionString: t.url,
      schema: bossSchema,
      schedule: false,
      supervise: false,
    });
    try {
      await boss.start();
      await boss.createQueue("cleanup");
      await boss.schedule("cleanup", "0 * * * *", { all: true }, { deadLetter: "dead" });
      const args = ["schedules", "import", "--from", "pg-boss", "--pg-boss-schema", bossSchema];
      const done = await json(...args);
      expect(done.imported).toEqual([
        expect.objectContaining({
          name: "pg-boss:cleanup",
          task: "cleanup",
          outcome: "created",
          unmapped: [expect.objectContaining({ option: "deadLetter", value: "dead" })],
        }),
      ]);
      expect((await json(...args)).imported[0].outcome).toBe("unchanged");
      const handed = await json("schedules", "handover", "pg-boss:cleanup");
      expect(handed.changes).toEqual([{ name: "pg-boss:cleanup", from: "external", to: "rota" }]);
    } finally {
      await boss.stop({ graceful: false, close: true });
      await dropSchema(t.url, bossSchema);
    }
  });

  it("refuses what does not fit, with a code", async () => {
    for (const [args, code] of [
      [["--from", "bullmq"], "INVALID_OPTION"],
      [["--from", "graphile-worker"], "INVALID_OPTION"],
      [["--from", "graphile-worker", "--crontab", gwCrontab, "--task", "x"], "INVALID_OPTION"],
      [["--from", "pg-boss", "--crontab", gwCrontab], "INVALID_OPTION"],
      [["--from", "pg-boss", "--pg-boss-schema", "missing_pgboss"], "IMPORT_SOURCE_NOT_FOUND"],
      [["--from", "graphile-worker", "--crontab", fixture("bad.crontab")], "INVALID_CRONTAB"],
    ] as const) {
      const result = await cli("schedules", "import", ...args, "--json");
      expect(result.code, args.join(" ")).toBe(1);
      expect(JSON.parse(result.stdout).error.code, args.join(" ")).toBe(code);
    }
  });

  it("crontab: --dry-run writes nothing", async () => {
    const dry = await json(
      "schedules",
      "import",
      "--crontab",
      fixture("legacy.crontab"),
      "--prefix",
      "dry-",
      "--dry-run",
    );
    expect(dry.dry_run).toBe(true);
    expect(dry.imported).toHaveLength(3);
    expect(await json("schedules", "list", "--prefix", "dry-")).toEqual([]);
  });
});
