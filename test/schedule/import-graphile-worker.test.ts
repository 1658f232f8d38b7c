// Importing a graphile-worker crontab: graphile-worker's own parser reads the
// file first (so it is one graphile-worker runs), rota imports it as external
// schedules, and a hand-over then takes a line on at the next minute
// graphile-worker's own matcher would have fired: none twice, none left out.
//
// graphile-worker 0.18 declares Node >= 22.18; its crontab parser runs on
// Node 20 as well, which is all this file uses of it.
import { parseCrontab } from "graphile-worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRotaError } from "../../src/errors.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { expectHandoverAtPeersNext } from "../helpers/handover.js";

const CRONTAB = `# graphile-worker's crontab (UTC)
0 4 * * 1 send_weekly_email ?fill=2d&max=10&priority=-3 {onlyIf: "weekly", note: "two  spaces"}
*/10 * * * * sync_feeds ?id=feeds_eu&queue=feeds&jobKey=feeds&jobKeyMode=preserve_run_at {region: 'eu'}

30 * * * * hourly_rollup
0 0 1 1 7 new_year
`;

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

/** The next minute after `after` that graphile-worker's parsed item fires (it matches in UTC). */
function graphileNext(item: ReturnType<typeof parseCrontab>[number], after: Date): number {
  let at = Math.floor(after.getTime() / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < 60 * 24 * 8; i++, at += 60_000) {
    const d = new Date(at);
    const digest = {
      min: d.getUTCMinutes(),
      hour: d.getUTCHours(),
      date: d.getUTCDate(),
      month: d.getUTCMonth() + 1,
      dow: d.getUTCDay(),
    };
    if (item.match(digest)) return at;
  }
  throw new Error("no occurrence within 8 days");
}

describe("rota schedules import --from graphile-worker", () => {
  it("maps each line as graphile-worker reads it and lists what did not map", async () => {
    const items = parseCrontab(CRONTAB);
    expect(items.map((i) => i.identifier)).toEqual([
      "send_weekly_email",
      "feeds_eu",
      "hourly_rollup",
      "new_year",
    ]);

    const dry = await t.rota.schedules.importGraphileWorkerCrontab(CRONTAB, { dryRun: true });
    expect(dry.imported.map((s) => [s.name, s.source, s.outcome])).toEqual([
      ["graphile-worker:send_weekly_email", "line 2", "created"],
      ["graphile-worker:feeds_eu", "line 3", "created"],
      ["graphile-worker:hourly_rollup", "line 5", "created"],
      ["graphile-worker:new_year", "line 6", "created"],
    ]);
    expect(await t.rota.schedules.list()).toEqual([]);

    const result = await t.rota.schedules.importGraphileWorkerCrontab(CRONTAB);
    const [weekly, feeds] = result.imported;
    expect(weekly?.unmapped).toEqual([]);
    expect(feeds?.unmapped.map((u) => [u.option, u.value])).toEqual([
      ["queue", "feeds"],
      ["jobKey", "feeds"],
      ["jobKeyMode", "preserve_run_at"],
    ]);
    // Each schedule's payload is the one graphile-worker parsed (JSON5, spaces kept).
    for (const [i, item] of items.entries()) {
      const schedule = await t.rota.schedules.get(result.imported[i]?.name as string);
      expect(schedule?.payload).toEqual(item.payload ?? {});
      expect(schedule).toMatchObject({ owner: "external", task: item.task, timezone: "UTC" });
    }
    expect(await t.rota.schedules.get("graphile-worker:send_weekly_email")).toMatchObject({
      cron: "0 4 * * 1",
      maxAttempts: 10,
      priority: 3,
      catchUp: "all",
      catchUpWindowMs: 2 * 86_400_000,
    });
    expect(await t.rota.schedules.get("graphile-worker:feeds_eu")).toMatchObject({
      task: "sync_feeds",
      queue: "feeds",
      catchUp: "none",
    });

    const again = await t.rota.schedules.importGraphileWorkerCrontab(CRONTAB);
    expect(again.imported.every((s) => s.outcome === "unchanged")).toBe(true);
  });

  it("refuses a file with a line rota cannot take, naming every such line, and writes nothing", async () => {
    const before = (await t.rota.schedules.list()).length;
    const bad = `${CRONTAB}0 4 * * * report ?fill=2x\n* * * * * hourly_rollup\n0 0 * * * other ?max=0\n`;
    // graphile-worker refuses it too.
    expect(() => parseCrontab(bad)).toThrow();
    try {
      await t.rota.schedules.importGraphileWorkerCrontab(bad);
      expect.unreachable();
    } catch (error) {
      expect(isRotaError(error, "INVALID_CRONTAB")).toBe(true);
      const message = (error as Error).message;
      expect(message).toContain("line 7: option fill=2x");
      expect(message).toContain('line 8: identifier "hourly_rollup" is line 5\'s too');
      expect(message).toContain("line 9: maxAttempts");
    }
    expect((await t.rota.schedules.list()).length).toBe(before);
  });

  it("a hand-over takes a line on at the next minute graphile-worker would fire: no double fire, no gap", async () => {
    const item = parseCrontab(CRONTAB).find((i) => i.identifier === "hourly_rollup");
    if (!item) throw new Error("hourly_rollup is in the crontab");
    await expectHandoverAtPeersNext(
      t,
      { name: "graphile-worker:hourly_rollup", task: "hourly_rollup" },
      (after, count) => {
        const grid: number[] = [];
        for (let at = after; grid.length < count; at = new Date(grid.at(-1) as number)) {
          grid.push(graphileNext(item, at));
        }
        return grid;
      },
    );
  });
});
