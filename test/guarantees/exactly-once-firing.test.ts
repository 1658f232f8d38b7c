// Guarantee 1: a schedule occurrence becomes at most one job, ever — and,
// with nothing crashing for good, exactly one. Time moves through the
// database clock seam (a simulated week takes seconds).
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { silentLogger } from "../../src/logger.js";
import { FAILED_WRITE_DELAY_MS, materializeDue } from "../../src/schedule/materializer.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

const MINUTE = 60_000;

let t: TestSchema;
beforeEach(async () => {
  t = await migratedSchema();
});
afterEach(() => t.drop());

/** Minute marks in (from, to]. */
function minuteMarks(from: Date, to: Date): number {
  return Math.floor(to.getTime() / MINUTE) - Math.floor(from.getTime() / MINUTE);
}

/** Resolves when `count()` reaches a target (checked whenever `poke` is called). */
function progress(count: () => number) {
  let waiting: { target: number; resolve: () => void } | null = null;
  return {
    poke() {
      if (waiting && count() >= waiting.target) {
        waiting.resolve();
        waiting = null;
      }
    },
    until(target: number, timeoutMs = 10_000): Promise<void> {
      if (count() >= target) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`reached ${count()} of ${target}`)),
          timeoutMs,
        );
        waiting = {
          target,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    },
  };
}

async function executions(schema: string, url: string) {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const result = await client.query<{ occurrence_at: Date; n: number }>(
      `select occurrence_at, count(*)::int as n from ${pg.escapeIdentifier(schema)}.jobs
       where schedule_id is not null and state <> 'superseded'
       group by occurrence_at order by occurrence_at`,
    );
    return result.rows;
  } finally {
    await client.end();
  }
}

describe("exactly-once firing", () => {
  it("an every-minute schedule driven through a simulated week fires 10,080 times", async () => {
    const fired: Date[] = [];
    // Counted once the outcome is written: the clock jumps only while no job
    // runs (a jump past a running job's lease would rightly rescue it and run
    // it again — at least once).
    let written = 0;
    const seen = progress(() => written);
    t.rota.events.on("job:run:success", () => {
      written++;
      seen.poke();
    });
    const worker = t.rota.worker({
      logger: silentLogger,
      concurrency: 10,
      rescueIntervalMs: 0,
      tasks: {
        tick: async (_payload, ctx) => {
          fired.push(ctx.job.occurrenceAt as Date);
        },
      },
    });
    await worker.start();
    const orchestrator = t.rota.orchestrator({ holder: "week", leaseTtlMs: 3_600_000 });
    const { schedule } = await t.rota.schedules.upsert({
      name: "every-minute",
      task: "tick",
      cron: "* * * * *",
      catchUp: "all",
      horizon: 20,
    });
    const start = await t.rota.clock.now();
    expect(schedule.cursorAt?.getTime()).toBeGreaterThan(start.getTime());

    // 1,008 steps of 10 minutes = 7 days.
    let now = start;
    for (let step = 0; step < 1_008; step++) {
      now = await t.rota.clock.shift(10 * MINUTE);
      const report = await orchestrator.tick();
      expect(report.errors).toEqual([]);
      await seen.until(minuteMarks(start, now));
    }
    await worker.stop();
    const end = await t.rota.clock.now();

    const weekEnd = new Date(start.getTime() + 7 * 24 * 60 * MINUTE);
    const inWeek = fired.filter((at) => at.getTime() <= weekEnd.getTime());
    expect(inWeek).toHaveLength(10_080);
    // Each a distinct minute mark (real time passing during the test may add
    // a mark after the week; none is fired twice).
    const distinct = new Set(fired.map((at) => at.getTime()));
    expect(distinct.size).toBe(fired.length);
    expect(fired.every((at) => at.getTime() % MINUTE === 0)).toBe(true);
    // Every mark up to the last shift fired; a real minute mark passing
    // before the worker stopped may add one more (its execution was already
    // materialized, and it was due): never one that was not yet due.
    expect(fired.length).toBeGreaterThanOrEqual(minuteMarks(start, now));
    expect(fired.length).toBeLessThanOrEqual(minuteMarks(start, end));
    expect(fired.every((at) => at.getTime() > start.getTime() && at <= end)).toBe(true);
  }, 120_000);

  it("two orchestrators with random pauses over 1,000 simulated minutes: every occurrence once", async () => {
    // Two processes' worth of state: separate pools, holders and events.
    const other = new Rota({ connection: t.url, schema: t.schema });
    try {
      const a = t.rota.orchestrator({ holder: "a", leaseTtlMs: 90_000 });
      const b = other.orchestrator({ holder: "b", leaseTtlMs: 90_000 });
      await t.rota.schedules.upsert({
        name: "race",
        task: "noop",
        cron: "* * * * *",
        catchUp: "all",
        horizon: 5,
      });
      const start = await t.rota.clock.now();
      // A seeded generator, so a failure can be replayed.
      let seed = 42;
      const random = () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      let leaders = 0;
      let now = start;
      for (let minute = 0; minute < 1_000; minute++) {
        now = await t.rota.clock.shift(MINUTE);
        // Each orchestrator ticks or pauses at random; the 90 s lease lapses
        // during a pause and the other takes over (a stale leader waking up
        // finds its epoch gone).
        const ticking = [random() < 0.6 ? a : null, random() < 0.6 ? b : null].filter(
          (o) => o !== null,
        );
        const reports = await Promise.all(ticking.map((o) => o.tick()));
        for (const report of reports) expect(report.errors).toEqual([]);
        leaders += reports.filter((r) => r.leader).length;
        // And, every few minutes, both run the materialization pass with no
        // lease at all, at the same moment: only the cursor compare-and-set
        // and the unique index stand between them and a double fire.
        if (minute % 7 === 0) {
          await Promise.all([
            materializeDue(t.db, t.rota.events),
            materializeDue(databaseOf(other), other.events),
          ]);
        }
      }
      // Leadership never overlapped: at most one leader per tick round.
      expect(leaders).toBeGreaterThan(0);
      const rows = await executions(t.schema, t.url);
      expect(rows.every((r) => r.n === 1)).toBe(true);
      // Every minute mark up to the end exists (with horizon 5, a few beyond).
      const due = rows.filter((r) => r.occurrence_at.getTime() <= now.getTime());
      expect(due).toHaveLength(minuteMarks(start, now));
    } finally {
      await other.close();
    }
  }, 120_000);

  it("a statement that fails half-way (after the insert, before commit) fires nothing, and the next pass fires once", async () => {
    const orchestrator = t.rota.orchestrator({ holder: "solo", leaseTtlMs: 3_600_000 });
    await t.rota.schedules.upsert({ name: "good", task: "noop", cron: "* * * * *", horizon: 1 });
    const { schedule: bad } = await t.rota.schedules.upsert({
      name: "doomed",
      task: "noop",
      cron: "* * * * *",
      horizon: 1,
    });
    const cursorBefore = bad.cursorAt as Date;
    // A trigger that fails the statement after this schedule's execution row
    // was inserted: the cursor advance in the same statement must go too.
    const s = `"${t.schema}"`;
    await t.db.pool.query(`
      create function ${s}.fail_once() returns trigger language plpgsql as $$
      begin
        if new.schedule_id = ${bad.id} then raise exception 'injected failure'; end if;
        return new;
      end $$;
      create trigger fail_once after insert on ${s}.jobs
        for each row execute function ${s}.fail_once();`);
    await t.rota.clock.shift(MINUTE);
    const failing = await orchestrator.tick();
    // The batch was refused, then retried per schedule: the good one went on.
    expect(failing.materialized?.failed).toBe(1);
    expect(failing.materialized?.schedules).toBe(1);
    const after = await t.rota.schedules.get("doomed");
    expect(after?.cursorAt?.getTime()).toBe(cursorBefore.getTime());
    const doomedRows = await t.db.pool.query(
      `select count(*)::int as n from ${s}.jobs where schedule_id = $1 and occurrence_at >= $2`,
      [bad.id, cursorBefore],
    );
    expect(doomedRows.rows[0].n).toBe(0);

    // Set aside with the reason, so it does not stay first in line.
    expect(after?.lastError).toMatch(/injected failure/);
    expect(after?.enabled).toBe(true);

    await t.db.pool.query(`drop trigger fail_once on ${s}.jobs`);
    // Its next try comes after FAILED_WRITE_DELAY_MS.
    await t.rota.clock.shift(FAILED_WRITE_DELAY_MS);
    const healed = await orchestrator.tick();
    expect(healed.materialized?.failed).toBe(0);
    const rows = await t.db.pool.query(
      `select occurrence_at, count(*)::int as n from ${s}.jobs where schedule_id = $1
       group by occurrence_at`,
      [bad.id],
    );
    expect(rows.rows.every((r: { n: number }) => r.n === 1)).toBe(true);
    expect(
      rows.rows.some(
        (r: { occurrence_at: Date }) => r.occurrence_at.getTime() === cursorBefore.getTime(),
      ),
    ).toBe(true);
  });
});
