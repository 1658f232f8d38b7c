import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Orchestrator } from "../../src/orchestrator/orchestrator.js";
import { generatedTargetKeys, type SimulationEntry } from "../../src/schedule/simulation-file.js";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

/**
 * What `rota simulate` predicts is what the orchestrator writes: the same
 * schedules, created live with the keys simulate generates for a count,
 * materialized by orchestrator ticks as the database clock moves through
 * the range, give per minute exactly the run_at counts simulate prints.
 *
 * Which cadences exist: adding targets writes the next occurrence's cadence
 * at once, and each later tick writes one cadence ahead. The clock starts at
 * 04:50, so every schedule's first cadence is at or before 05:30, and any
 * earlier cadence (not in the database) ends before 06:00, where the range
 * starts: every occurrence whose runs can fall in [06:00, 10:00) is written.
 */

let t: TestSchema;
let orchestrator: Orchestrator;
let dir: string;

beforeAll(async () => {
  t = await migratedSchema();
  orchestrator = t.rota.orchestrator({ holder: "equality" });
  dir = await mkdtemp(join(tmpdir(), "rota-simulate-eq-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await t.drop();
});

const START = new Date("2026-03-02T04:50:00Z");
const FROM = new Date("2026-03-02T06:00:00Z");
const TO = new Date("2026-03-02T10:00:00Z");
const MINUTES = (TO.getTime() - FROM.getTime()) / 60_000;

const entries: (SimulationEntry & { targets?: number })[] = [
  // The herd: every target at the occurrence.
  { name: "eq.herd", task: "scan", cron: "0 * * * *", targets: 1_500 },
  {
    name: "eq.random",
    task: "scan",
    cron: "0 * * * *",
    window: "1h",
    distribution: "random",
    seed: 20_260_302,
    targets: 1_500,
  },
  // Its window crosses the next hour's start, and 06:00.
  {
    name: "eq.spread",
    task: "scan",
    cron: "30 * * * *",
    window: "45m",
    distribution: "spread",
    targets: 1_500,
  },
  {
    name: "eq.batches",
    task: "scan",
    cron: "15 * * * *",
    window: "40m",
    distribution: "batches:100/2m",
    targets: 1_500,
  },
  // A 50-minute window capped at the 20-minute gap; random seeded by the name.
  { name: "eq.every", task: "scan", every: "20m", window: "50m", targets: 400 },
  // 10:00 in Berlin is 09:00 UTC in March; its 2-hour window runs past the range.
  {
    name: "eq.daily-berlin",
    task: "scan",
    cron: "0 10 * * *",
    timezone: "Europe/Berlin",
    window: "2h",
    distribution: "spread",
    targets: 2_000,
  },
  // No targets: its own grid, at each occurrence.
  { name: "eq.own", task: "scan", every: "15m" },
];

/** Moves the database clock to `at` (it keeps running from there). */
async function setClock(at: Date): Promise<void> {
  const now = await t.rota.clock.now();
  await t.rota.clock.shift(at.getTime() - now.getTime());
}

interface Counted {
  name: string;
  minute: number;
  count: number;
}

/** The executions materialized per schedule and per minute of [FROM, TO), by SQL. */
async function materialized(): Promise<Counted[]> {
  const result = await t.db.pool.query<Counted>(
    `select s.name, (floor(extract(epoch from j.run_at - $1::timestamptz) / 60))::int as minute,
            count(*)::int as count
     from "${t.schema}".jobs j join "${t.schema}".schedules s on s.id = j.schedule_id
     where s.name like 'eq.%' and j.state not in ('superseded', 'missed')
       and j.run_at >= $1 and j.run_at < $2
     group by 1, 2`,
    [FROM, TO],
  );
  return result.rows;
}

describe("rota simulate equals what the orchestrator materializes", () => {
  it("per minute and per schedule, over four hours of hourly, 20-minute, daily and own-grid schedules", async () => {
    await setClock(START);
    for (const { targets, ...input } of entries) {
      await t.rota.schedules.upsert(input);
      if (targets !== undefined) {
        await t.rota.schedules.targets.add(input.name, generatedTargetKeys(targets));
      }
    }
    // Every occurrence is on a 5-minute mark: a tick just after each writes
    // the next cadence ahead of it.
    for (let at = START.getTime() + 5 * 60_000; at <= TO.getTime(); at += 5 * 60_000) {
      await setClock(new Date(at + 1_000));
      const report = await orchestrator.tick();
      expect(report.errors).toEqual([]);
      expect(report.leader).toBe(true);
    }

    const input = join(dir, "schedules.json");
    await writeFile(input, JSON.stringify(entries));
    const run = await runCli([
      "simulate",
      "--file",
      input,
      "--from",
      FROM.toISOString(),
      "--to",
      TO.toISOString(),
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const simulated = JSON.parse(run.stdout) as {
      per_minute: { minute: string; count: number }[];
      peak: number;
      peak_minute: string;
      schedules: { name: string; executions: number; peak: number; peak_minute: string | null }[];
    };

    const rows = await materialized();
    const perMinute = new Array<number>(MINUTES).fill(0);
    for (const row of rows) perMinute[row.minute] = (perMinute[row.minute] as number) + row.count;
    expect(simulated.per_minute.map((m) => m.count)).toEqual(perMinute);
    expect(simulated.per_minute.map((m) => m.minute)).toEqual(
      perMinute.map((_, m) => new Date(FROM.getTime() + m * 60_000).toISOString()),
    );

    for (const schedule of simulated.schedules) {
      const mine = rows.filter((r) => r.name === schedule.name);
      const counts = new Array<number>(MINUTES).fill(0);
      for (const row of mine) counts[row.minute] = row.count;
      const peak = Math.max(...counts);
      expect(schedule, schedule.name).toEqual({
        name: schedule.name,
        executions: counts.reduce((a, b) => a + b, 0),
        peak,
        peak_minute: new Date(FROM.getTime() + counts.indexOf(peak) * 60_000).toISOString(),
      });
    }
    // The comparison means something: every schedule ran in the range, the
    // herd piles up 1,500 (and more) at the hours, the windows flatten theirs.
    const byName = new Map(simulated.schedules.map((s) => [s.name, s]));
    expect(byName.get("eq.herd")).toMatchObject({ executions: 4 * 1_500, peak: 1_500 });
    expect(byName.get("eq.random")?.executions).toBe(4 * 1_500);
    expect(byName.get("eq.random")?.peak).toBeLessThan(60);
    expect(byName.get("eq.own")?.executions).toBe(16);
    expect(byName.get("eq.daily-berlin")).toMatchObject({ executions: 1_000, peak: 17 });
    expect(simulated.peak).toBeGreaterThanOrEqual(1_500);
    expect(simulated.peak_minute.slice(14, 16)).toBe("00");
  });
});
