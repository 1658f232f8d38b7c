// The time horizon: a leader that dies delays nothing already planned, and a
// per-second schedule plans minutes ahead, never more than the cap.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { TIME_HORIZON_CAP } from "../../src/schedule/plan.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const LEASE_MS = 15_000;
const TICK_MS = 1_000;
const STEP_MS = 500;

interface ExecutionRow {
  occurrence_at: Date;
  run_at: Date;
  created_at: Date;
  started_at: Date | null;
  state: string;
}

async function executions(name: string): Promise<ExecutionRow[]> {
  const result = await t.db.pool.query<ExecutionRow>(
    `select j.occurrence_at, j.run_at, j.created_at, j.started_at, j.state
     from "${t.schema}".jobs j join "${t.schema}".schedules s on s.id = j.schedule_id
     where s.name = $1 and j.state <> 'superseded' order by j.occurrence_at`,
    [name],
  );
  return result.rows;
}

describe("a leader crash delays no planned run", () => {
  it("every execution due while no leader leads was planned before it died, and starts on time, once", async () => {
    await t.rota.schedules.upsert({
      name: "per-second",
      task: "tick",
      queue: "failover",
      cron: "* * * * * *",
      catchUp: "all",
    });
    // The leader's one pass, then it dies: no release, no more ticks.
    const leader = t.rota.orchestrator({ holder: "dead", leaseTtlMs: LEASE_MS, tickMs: TICK_MS });
    await leader.tick();
    const diedAt = await t.rota.clock.now();

    const worker = t.rota.worker({
      queues: ["failover"],
      tasks: { tick: async () => {} },
      logger: silentLogger,
      rescueIntervalMs: 0,
    });
    await worker.start();
    // The last time every execution due by then was seen run.
    let end = diedAt;
    try {
      // A full lease and a tick pass by the database clock, with no leader.
      // Each step moves the clock (which wakes the worker) and waits until
      // every execution due by then has run. (Not only started: a claim
      // marks its jobs started as it commits, and one whose rows reach the
      // worker after the last step, as the worker stops, is handed back
      // unrun; seen on a loaded machine.)
      for (let moved = 0; moved < LEASE_MS + TICK_MS; moved += STEP_MS) {
        await t.rota.clock.shift(STEP_MS);
        const now = await t.rota.clock.now();
        await expect
          .poll(
            async () =>
              (await executions("per-second")).filter(
                (e) => e.run_at <= now && e.state !== "succeeded" && e.state !== "missed",
              ).length,
            { timeout: 10_000 },
          )
          .toBe(0);
        end = now;
      }
    } finally {
      await worker.stop();
    }
    const due = (await executions("per-second")).filter(
      (e) => e.occurrence_at > diedAt && e.occurrence_at <= end,
    );
    // One a second over the whole outage, each one planned before the leader died.
    const seconds = Math.floor(end.getTime() / 1000) - Math.floor(diedAt.getTime() / 1000);
    expect(due).toHaveLength(seconds);
    expect(new Set(due.map((e) => e.occurrence_at.getTime())).size).toBe(due.length);
    for (const e of due) {
      expect(e.created_at.getTime()).toBeLessThanOrEqual(diedAt.getTime());
      expect(e.state).toBe("succeeded");
      // On time by the database clock: within the step the clock jumped by,
      // plus the wake-up and the claim (a second allowed for a busy machine;
      // an execution planned by the next leader would be 15 s late).
      const lateMs = (e.started_at as Date).getTime() - e.run_at.getTime();
      expect(lateMs).toBeGreaterThanOrEqual(0);
      expect(lateMs).toBeLessThan(STEP_MS + 1_000);
    }

    // A standby takes over once the lease has expired; still one per occurrence.
    const standby = t.rota.orchestrator({ holder: "standby", leaseTtlMs: LEASE_MS });
    const report = await standby.tick();
    expect(report.leader).toBe(true);
    const after = await executions("per-second");
    expect(new Set(after.map((e) => e.occurrence_at.getTime())).size).toBe(after.length);
  });
});

/**
 * Never more than the cap planned ahead, and the horizon filled up to it: a
 * per-second schedule's count drops by one for each second between the last
 * pass and the count (the database clock runs on), so two are allowed.
 */
function expectCapped(planned: number): void {
  expect(planned).toBeLessThanOrEqual(TIME_HORIZON_CAP);
  expect(planned).toBeGreaterThanOrEqual(TIME_HORIZON_CAP - 2);
}

describe("the time horizon's cap", () => {
  it("a per-second schedule with a day's horizonMs plans at most TIME_HORIZON_CAP, also after a day idle", async () => {
    const future = async () => {
      const now = await t.rota.clock.now();
      return (await executions("capped")).filter((e) => e.state === "scheduled" && e.run_at > now)
        .length;
    };
    await t.rota.schedules.upsert({
      name: "capped",
      task: "tick",
      queue: "capped",
      cron: "* * * * * *",
      horizonMs: 86_400_000,
    });
    const orchestrator = t.rota.orchestrator({ holder: "cap", leaseTtlMs: 3_600_000 });
    await orchestrator.tick();
    expectCapped(await future());
    expect((await t.rota.schedules.get("capped"))?.horizonMs).toBe(86_400_000);

    // A day with no orchestrator: the passes that catch up (1,000 occurrences
    // each) end with the horizon filled again, and still no more than the cap.
    await t.rota.clock.shift(86_400_000);
    let passes = 0;
    while ((await future()) === 0 && passes < 200) {
      await orchestrator.tick();
      passes++;
    }
    expect(passes).toBeGreaterThan(1);
    expectCapped(await future());
    await t.rota.clock.reset();
  });
});
