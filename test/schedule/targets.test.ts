// Fan-out to targets (docs/scheduling.md, "Targets, windows and
// strategies"): each cadence of a schedule becomes an execution per target
// at occurrence + offset, the offset inside the capped window, placed by the
// schedule's strategy. Time moves through the database clock seam only.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { defineDistribution } from "../../src/schedule/distribution.js";
import { fanOutCadence } from "../../src/schedule/fan-out.js";
import { materializeDue } from "../../src/schedule/materializer.js";
import type { ScheduleInput } from "../../src/schedule/schedule-options.js";
import { compileSpec } from "../../src/schedule/spec.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
  await t.db.pool.query(
    `create table "${t.schema}".projects (id int primary key, scans_enabled boolean not null)`,
  );
});
afterAll(() => t.drop());

interface Execution {
  id: string;
  target_key: string;
  occurrence_at: Date;
  run_at: Date;
  offset_ms: number;
  distribution: string | null;
  state: string;
  payload: unknown;
  started_at: Date | null;
}

/** A schedule's executions for its targets (not its own grid), by occurrence then run time. */
async function executions(name: string, states = ["scheduled", "available"]): Promise<Execution[]> {
  const result = await t.db.pool.query<Execution>(
    `select j.id::text, j.target_key, j.occurrence_at, j.run_at,
            j.planned_offset_ms::float8 as offset_ms, j.distribution, j.state, j.payload,
            j.started_at
     from "${t.schema}".jobs j join "${t.schema}".schedules s on s.id = j.schedule_id
     where s.name = $1 and j.target_key <> '' and j.state = any($2)
     order by j.occurrence_at, j.run_at, j.target_key`,
    [name, states],
  );
  return result.rows;
}

/** One orchestrator pass. */
const pass = () => materializeDue(t.db, t.rota.events);

/** Moves the database clock to `to`. */
async function clockTo(to: Date): Promise<void> {
  const now = await t.rota.clock.now();
  await t.rota.clock.shift(to.getTime() - now.getTime());
}

const keys = (n: number, prefix = "p") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const byOccurrence = (rows: Execution[]) => {
  const groups = new Map<number, Execution[]>();
  for (const r of rows) {
    const list = groups.get(r.occurrence_at.getTime()) ?? [];
    list.push(r);
    groups.set(r.occurrence_at.getTime(), list);
  }
  return [...groups.values()];
};

describe("targets", () => {
  it("offsets stay inside the window capped at the period, and run_at is occurrence + offset", async () => {
    const { schedule } = await t.rota.schedules.upsert({
      name: "capped",
      task: "scan",
      cron: "*/10 * * * *",
      window: "1h",
    });
    expect(schedule.windowMs).toBe(3_600_000);
    expect(schedule.effectiveWindowMs).toBe(600_000);
    const listed = (await t.rota.schedules.list({ namePrefix: "capped" }))[0];
    expect(listed?.effectiveWindowMs).toBe(600_000);
    expect(await t.rota.schedules.targets.add("capped", keys(500))).toEqual({
      added: 500,
      updated: 0,
      existing: 0,
    });
    const rows = await executions("capped");
    expect(rows).toHaveLength(500);
    for (const r of rows) {
      expect(r.offset_ms).toBeGreaterThanOrEqual(0);
      expect(r.offset_ms).toBeLessThan(600_000);
      expect(r.run_at.getTime()).toBe(r.occurrence_at.getTime() + r.offset_ms);
      expect(r.distribution).toBe("random");
    }
    // Spread over the capped window, not bunched at its start.
    expect(Math.max(...rows.map((r) => r.offset_ms))).toBeGreaterThan(500_000);
  });

  it("spread: no two of 1,000 targets in the same second of a 1,000-second window, and each keeps its place", async () => {
    await t.rota.schedules.upsert({
      name: "spread",
      task: "scan",
      every: "1000s",
      window: "1000s",
      distribution: "spread",
    });
    await t.rota.schedules.targets.add("spread", keys(1_000));
    const first = await executions("spread");
    expect(first).toHaveLength(1_000);
    const seconds = new Set(first.map((r) => Math.floor(r.offset_ms / 1_000)));
    expect(seconds.size).toBe(1_000);
    // The next cadence, after the first occurrence passes.
    await clockTo(new Date(first[0]?.occurrence_at.getTime() as number));
    await pass();
    const [a, b] = byOccurrence(await executions("spread"));
    expect(b).toHaveLength(1_000);
    const offsets = new Map(a?.map((r) => [r.target_key, r.offset_ms]));
    for (const r of b ?? []) expect(r.offset_ms).toBe(offsets.get(r.target_key));
  });

  it("batches: never more than K per slot; a cadence that cannot fit is refused and said so", async () => {
    await t.rota.schedules.upsert({
      name: "batches",
      task: "scan",
      cron: "0 * * * *",
      window: "1h",
      distribution: "batches:7/1m",
    });
    await t.rota.schedules.targets.add("batches", keys(400));
    const rows = await executions("batches");
    expect(rows).toHaveLength(400);
    const perSlot = new Map<number, number>();
    for (const r of rows) {
      expect(r.offset_ms % 60_000).toBe(0);
      perSlot.set(r.offset_ms, (perSlot.get(r.offset_ms) ?? 0) + 1);
    }
    expect(Math.max(...perSlot.values())).toBe(7);
    expect(perSlot.size).toBe(Math.ceil(400 / 7));
    // 60 slots of 7 hold 420: 30 more targets cannot be placed in the next cadence.
    await t.rota.schedules.targets.add("batches", keys(30, "q"));
    await clockTo(rows[0]?.occurrence_at as Date);
    const result = await pass();
    expect(result.failed).toBe(1);
    const schedule = await t.rota.schedules.get("batches");
    expect(schedule?.enabled).toBe(true);
    expect(schedule?.lastError).toMatch(/fit 420 targets .* has 430/);
    expect(byOccurrence(await executions("batches"))).toHaveLength(1);
  });

  it("random: re-rolled each cadence, the same for the same seed, another for another", async () => {
    for (const [name, seed] of [
      ["rnd-a", 7],
      ["rnd-b", 7],
      ["rnd-c", 8],
    ] as const) {
      await t.rota.schedules.upsert({
        name,
        task: "scan",
        cron: "0 * * * *",
        window: "1h",
        seed,
      });
      await t.rota.schedules.targets.add(name, keys(200));
    }
    const [a, b, c] = await Promise.all(["rnd-a", "rnd-b", "rnd-c"].map((n) => executions(n)));
    const offsets = (rows: Execution[] | undefined) => rows?.map((r) => r.offset_ms);
    expect(offsets(a)).toEqual(offsets(b));
    expect(offsets(c)).not.toEqual(offsets(a));
    await clockTo(a?.[0]?.occurrence_at as Date);
    await pass();
    const [first, second] = byOccurrence(await executions("rnd-a"));
    expect(second).toHaveLength(200);
    const before = new Map(first?.map((r) => [r.target_key, r.offset_ms]));
    const same = (second ?? []).filter((r) => before.get(r.target_key) === r.offset_ms).length;
    expect(same).toBeLessThan(5);
  });

  it("a target source: a new row joins at its own slot in the next cadence, a gone one leaves, a failing query keeps the targets", async () => {
    const table = `"${t.schema}".projects`;
    await t.db.pool.query(`insert into ${table} select g, true from generate_series(1, 50) g`);
    await t.rota.schedules.upsert({
      name: "sourced",
      task: "scan",
      cron: "0 * * * *",
      window: "1h",
      distribution: "spread",
      targetSource: `select id::text as key from ${table} where scans_enabled`,
    });
    expect(await t.rota.schedules.targets.count("sourced")).toBe(50);
    const first = await executions("sourced");
    expect(first).toHaveLength(50);
    await t.db.pool.query(`insert into ${table} values (51, true)`);
    await t.db.pool.query(`update ${table} set scans_enabled = false where id = 7`);
    const occurrence = first[0]?.occurrence_at as Date;
    await clockTo(occurrence);
    await pass();
    const now = await t.rota.clock.now();
    const rows = await executions("sourced");
    const joined = rows.filter((r) => r.target_key === "51");
    // One execution, in the newly planned cadence, at its own slot: not now.
    expect(joined).toHaveLength(1);
    expect(joined[0]?.occurrence_at.getTime()).toBe(occurrence.getTime() + 3_600_000);
    expect(joined[0]?.run_at.getTime()).toBeGreaterThan(now.getTime());
    expect(rows.filter((r) => r.target_key === "7")).toHaveLength(0);
    const next = rows.filter((r) => r.occurrence_at.getTime() > occurrence.getTime());
    expect(next).toHaveLength(50);
    expect(await t.rota.schedules.targets.count("sourced")).toBe(50);
    // The source breaks: the targets stay, the next cadence is planned, and the schedule says why.
    await t.db.pool.query(`alter table ${table} rename to projects_gone`);
    try {
      await clockTo(new Date(occurrence.getTime() + 3_600_000));
      await pass();
      const schedule = await t.rota.schedules.get("sourced");
      expect(schedule?.lastError).toMatch(/^target source failed: .*does not exist/);
      const latest = byOccurrence(await executions("sourced")).at(-1);
      expect(latest?.[0]?.occurrence_at.getTime()).toBe(occurrence.getTime() + 2 * 3_600_000);
      expect(latest).toHaveLength(50);
    } finally {
      await t.db.pool.query(`alter table "${t.schema}".projects_gone rename to projects`);
    }
  });

  it("a target's payload is merged over the schedule's; adding twice changes nothing", async () => {
    await t.rota.schedules.upsert({
      name: "payloads",
      task: "scan",
      cron: "0 * * * *",
      payload: { kind: "full", depth: 1 },
    });
    await t.rota.schedules.targets.add("payloads", [{ key: "a", payload: { depth: 3 } }, "b"]);
    const rows = await executions("payloads");
    expect(Object.fromEntries(rows.map((r) => [r.target_key, r.payload]))).toEqual({
      a: { kind: "full", depth: 3 },
      b: { kind: "full", depth: 1 },
    });
    expect(
      await t.rota.schedules.targets.add("payloads", ["b", { key: "a", payload: { depth: 3 } }]),
    ).toEqual({ added: 0, updated: 0, existing: 2 });
    expect(
      await t.rota.schedules.targets.add("payloads", [{ key: "a", payload: { depth: 4 } }]),
    ).toEqual({ added: 0, updated: 1, existing: 0 });
    // No window: every target runs at the occurrence.
    expect(rows.every((r) => r.offset_ms === 0)).toBe(true);
  });

  it("adds 100,000 keys from an async iterable in one call, bounded batches, idempotent", async () => {
    await t.rota.schedules.upsert({ name: "many", task: "scan", cron: "0 0 * * *", window: "6h" });
    async function* stream(n: number) {
      for (let i = 0; i < n; i++) yield `k${i}`;
    }
    const progress: number[] = [];
    const added = await t.rota.schedules.targets.add("many", stream(100_000), {
      onProgress: (done) => progress.push(done),
    });
    expect(added).toEqual({ added: 100_000, updated: 0, existing: 0 });
    expect(progress.length).toBe(20);
    expect(await t.rota.schedules.targets.count("many")).toBe(100_000);
    expect(await t.rota.schedules.targets.add("many", stream(100_000))).toEqual({
      added: 0,
      updated: 0,
      existing: 100_000,
    });
    const page = await t.rota.schedules.targets.list("many", { after: "k99990", limit: 5 });
    expect(page.map((p) => p.key)).toEqual(["k99991", "k99992", "k99993", "k99994", "k99995"]);
    expect(page[0]?.nextRunAt).toBeInstanceOf(Date);
  });

  it("bad input is refused with a code and nothing is written", async () => {
    await t.rota.schedules.upsert({ name: "strict", task: "scan", cron: "0 * * * *" });
    const count = async (table: string) =>
      (await t.db.pool.query(`select count(*)::int as n from "${t.schema}".${table}`)).rows[0]
        ?.n as number;
    const before = [await count("schedules"), await count("schedule_targets"), await count("jobs")];
    const hourly = (extra: Partial<ScheduleInput>) => () =>
      t.rota.schedules.upsert({ name: "w", task: "s", cron: "0 * * * *", ...extra });
    const cases: [() => Promise<unknown>, string][] = [
      [() => t.rota.schedules.targets.add("strict", [...keys(6_000), ""]), "INVALID_TARGET"],
      [() => t.rota.schedules.targets.add("strict", ["ok", "x".repeat(201)]), "INVALID_TARGET"],
      [() => t.rota.schedules.targets.add("strict", ["a\u0000b"]), "INVALID_TARGET"],
      [() => t.rota.schedules.targets.add("strict", [42 as unknown as string]), "INVALID_TARGET"],
      [
        () => t.rota.schedules.targets.add("strict", "abc" as unknown as string[]),
        "INVALID_TARGET",
      ],
      [() => t.rota.schedules.targets.add("nope", ["a"]), "SCHEDULE_NOT_FOUND"],
      [hourly({ window: "1mo" }), "INVALID_OPTION"],
      [hourly({ distribution: "spread" }), "INVALID_OPTION"],
      [hourly({ window: "1h", distribution: "batches:0/1m" }), "INVALID_OPTION"],
      [hourly({ targetSource: "select 1" }), "INVALID_TARGET_SOURCE"],
      [
        hourly({ targetSource: "select id::text as key from no_such_table" }),
        "INVALID_TARGET_SOURCE",
      ],
      [
        hourly({ targetSource: `delete from "${t.schema}".projects returning id::text as key` }),
        "INVALID_TARGET_SOURCE",
      ],
      [hourly({ targetSource: "select $1::text as key" }), "INVALID_TARGET_SOURCE"],
      [() => t.rota.schedules.upcoming("strict", { target: "x" }), "INVALID_OPTION"],
      [() => t.rota.schedules.upcoming("payloads", { target: "zz" }), "TARGET_NOT_FOUND"],
    ];
    for (const [call, code] of cases) {
      await expect(call()).rejects.toMatchObject({ name: "RotaError", code });
    }
    expect([
      await count("schedules"),
      await count("schedule_targets"),
      await count("jobs"),
    ]).toEqual(before);
    expect(await count("projects")).toBeGreaterThan(0);
  });

  it("removing a target removes its future executions, and nothing runs for it", async () => {
    await t.rota.schedules.upsert({
      name: "removal",
      task: "scan-removal",
      queue: "removal",
      cron: "0 * * * *",
      window: "10m",
    });
    await t.rota.schedules.targets.add("removal", keys(20));
    expect(await t.rota.schedules.targets.remove("removal", ["p3", "p4"])).toEqual({
      removed: 2,
      removedExecutions: 2,
    });
    const rows = await executions("removal");
    expect(rows.map((r) => r.target_key)).not.toContain("p3");
    const ran: string[] = [];
    const worker = t.rota.worker({
      queues: ["removal"],
      tasks: {
        "scan-removal": async (_payload, context) => void ran.push(context.job.targetKey as string),
      },
      logger: silentLogger,
      rescueIntervalMs: 0,
    });
    await worker.start();
    try {
      // Past the whole window of the cadence, and a pass plans the next one.
      await clockTo(new Date((rows[0]?.occurrence_at.getTime() as number) + 600_000));
      await pass();
      await expect.poll(() => ran.length, { timeout: 10_000 }).toBe(18);
    } finally {
      await worker.stop();
    }
    expect(ran.sort()).toEqual(
      keys(20)
        .filter((k) => k !== "p3" && k !== "p4")
        .sort(),
    );
    const next = byOccurrence(await executions("removal")).at(-1) ?? [];
    expect(next).toHaveLength(18);
  });

  it("upcoming --target shows exactly when the job becomes claimable, and a worker claims it no earlier", async () => {
    await t.rota.schedules.upsert({
      name: "claimable",
      task: "scan-claimable",
      queue: "claimable",
      cron: "0 * * * *",
      window: "1h",
      distribution: "spread",
    });
    await t.rota.schedules.targets.add("claimable", keys(10));
    const [next, after] = await t.rota.schedules.upcoming("claimable", { target: "p5", limit: 2 });
    const job = (await executions("claimable")).find((r) => r.target_key === "p5");
    expect(next?.runAt.getTime()).toBe(job?.run_at.getTime());
    expect(next?.executionId).toBe(job?.id);
    expect(next?.offsetMs).toBe(job?.offset_ms);
    // Computed beyond the horizon by the same placement: spread keeps the offset.
    expect(after?.state).toBe("computed");
    expect(after?.offsetMs).toBe(next?.offsetMs);
    expect(after?.runAt.getTime()).toBe((next?.runAt.getTime() as number) + 3_600_000);
    let startedAt: Date | null = null;
    const worker = t.rota.worker({
      queues: ["claimable"],
      tasks: {
        "scan-claimable": async (_payload, context) => {
          if (context.job.targetKey === "p5") startedAt = await t.rota.clock.now();
        },
      },
      logger: silentLogger,
      rescueIntervalMs: 0,
    });
    await clockTo(new Date((next?.runAt.getTime() as number) - 400));
    await worker.start();
    try {
      await expect.poll(() => startedAt, { timeout: 10_000 }).not.toBeNull();
    } finally {
      await worker.stop();
    }
    const ran = (await executions("claimable", ["succeeded"])).find((r) => r.target_key === "p5");
    expect(ran?.started_at?.getTime()).toBeGreaterThanOrEqual(next?.runAt.getTime() as number);
    expect((startedAt as Date | null)?.getTime()).toBeGreaterThanOrEqual(
      next?.runAt.getTime() as number,
    );
  });

  it("deleting the schedule removes its targets and their future executions", async () => {
    await t.rota.schedules.upsert({
      name: "doomed",
      task: "scan",
      cron: "0 * * * *",
      window: "1h",
    });
    await t.rota.schedules.targets.add("doomed", keys(30));
    const id = (await t.rota.schedules.get("doomed"))?.id;
    expect(await executions("doomed")).toHaveLength(30);
    await t.rota.schedules.remove("doomed");
    const left = await t.db.pool.query(
      `select (select count(*)::int from "${t.schema}".schedule_targets where schedule_id = $1) as targets,
              (select count(*)::int from "${t.schema}".jobs
               where schedule_id = $1 and state in ('scheduled', 'available')) as jobs`,
      [id],
    );
    expect(left.rows[0]).toEqual({ targets: 0, jobs: 0 });
  });

  it("two orchestrators racing, and a stale one writing a cadence again, never make two executions of one (schedule, target, occurrence)", async () => {
    await t.rota.schedules.upsert({ name: "raced", task: "scan", cron: "0 * * * *", window: "1h" });
    await t.rota.schedules.targets.add("raced", keys(3_000));
    const first = await executions("raced");
    await clockTo(first[0]?.occurrence_at as Date);
    // A leader whose lease another holder has since taken writes nothing.
    await t.db.pool.query(
      `insert into "${t.schema}".leases (name, holder, epoch, acquired_at, expires_at)
       values ('fan-out-race', 'new-leader', 2, now(), now() + interval '1 hour')`,
    );
    const cadences: string[] = [];
    const off = t.rota.events.on("schedule:cadence:materialized", (e) => {
      if (e.name === "raced") cadences.push(`${e.occurrenceAt.toISOString()}:${e.executions}`);
    });
    try {
      const stale = await materializeDue(t.db, t.rota.events, {
        lease: { name: "fan-out-race", holder: "old-leader", epoch: 1 },
      });
      expect(stale.executions).toBe(0);
      expect(cadences).toEqual([]);
      // Three passes at once: one plans the next cadence, the others lose the
      // compare-and-set on the cursor and write nothing.
      await Promise.all([pass(), pass(), pass()]);
    } finally {
      off();
    }
    const next = new Date((first[0]?.occurrence_at.getTime() as number) + 3_600_000);
    expect(cadences).toEqual([`${next.toISOString()}:3000`]);
    // A stale leader that missed the cursor's move writes the same cadence again.
    const row = (
      await t.db.pool.query(`select * from "${t.schema}".schedules where name = 'raced'`)
    ).rows[0];
    const grid = compileSpec({ cron: "0 * * * *", timezone: "UTC" });
    const again = await t.db.transaction((client) =>
      fanOutCadence(
        t.db,
        t.rota.events,
        client,
        { ...row, id: String(row.id), window_ms: Number(row.window_ms), seed: null },
        grid,
        {
          occurrenceAt: new Date((first[0]?.occurrence_at.getTime() as number) + 3_600_000),
          deadlineAt: null,
        },
      ),
    );
    expect(again).toBe(0);
    const counts = await t.db.pool.query(
      `select count(*)::int as n, count(distinct (target_key, occurrence_at))::int as distinct_n
       from "${t.schema}".jobs j join "${t.schema}".schedules s on s.id = j.schedule_id
       where s.name = 'raced' and j.state <> 'superseded'`,
    );
    expect(counts.rows[0]).toEqual({ n: 6_000, distinct_n: 6_000 });
  });

  it("changing the strategy supersedes what has not started and re-plans it; the cadence in progress keeps what is still ahead", async () => {
    await t.rota.schedules.upsert({ name: "swap", task: "scan", cron: "0 * * * *", window: "1h" });
    await t.rota.schedules.targets.add("swap", keys(600));
    const planned = await executions("swap");
    const occurrence = planned[0]?.occurrence_at as Date;
    // Half-way through the cadence: some have run (state as if done), some
    // have not. (The database clock goes on in real time too: those due
    // within the next minute count as run, so none comes due meanwhile.)
    await clockTo(new Date(occurrence.getTime() + 1_800_000));
    await pass();
    await t.db.pool.query(
      `update "${t.schema}".jobs set state = 'succeeded', attempts = 1, started_at = run_at, finished_at = run_at
       where id = any($1)`,
      [planned.filter((r) => r.offset_ms < 1_860_000).map((r) => r.id)],
    );
    const result = await t.rota.schedules.upsert({
      name: "swap",
      task: "scan",
      cron: "0 * * * *",
      window: "1h",
      distribution: "spread",
    });
    expect(result.outcome).toBe("changed");
    expect(result.superseded).toBeGreaterThan(600);
    const now = await t.rota.clock.now();
    const live = await executions("swap");
    const current = live.filter((r) => r.occurrence_at.getTime() === occurrence.getTime());
    // Every target that has not run keeps a run in this cadence, ahead of
    // now: at its new slot (spread) where that is still ahead, else at its
    // old one (random), none at once.
    const ran = new Set(planned.filter((r) => r.offset_ms < 1_860_000).map((r) => r.target_key));
    expect(current.map((r) => r.target_key).sort()).toEqual(
      keys(600)
        .filter((k) => !ran.has(k))
        .sort(),
    );
    for (const r of current) expect(r.run_at.getTime()).toBeGreaterThan(now.getTime());
    const bySpread = current.filter((r) => r.distribution === "spread");
    expect(bySpread.length).toBeGreaterThan(100);
    expect(current.length - bySpread.length).toBeGreaterThan(0);
    // The next cadence: every target once, by spread.
    const next = live.filter((r) => r.occurrence_at.getTime() === occurrence.getTime() + 3_600_000);
    expect(next).toHaveLength(600);
    expect(new Set(next.map((r) => r.distribution))).toEqual(new Set(["spread"]));
    // Never two live executions of one target and occurrence.
    const all = await executions("swap", ["scheduled", "available", "succeeded"]);
    const ids = all.map((r) => `${r.target_key}@${r.occurrence_at.getTime()}`);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("a custom strategy plans only where registered; elsewhere the schedule says why", async () => {
    const name = `tens-${Date.now()}`;
    await t.rota.schedules.upsert({
      name: "custom",
      task: "scan",
      cron: "0 * * * *",
      window: "1h",
      distribution: name,
    });
    // The API call goes through; nothing is planned without the strategy.
    await t.rota.schedules.targets.add("custom", keys(5));
    expect(await executions("custom")).toHaveLength(0);
    await pass();
    expect((await t.rota.schedules.get("custom"))?.lastError).toMatch(/is not registered/);
    defineDistribution(name, ({ key }) => Number(key.slice(1)) * 10_000);
    // The orchestrator tries again a minute later.
    await t.rota.clock.shift(61_000);
    await pass();
    const rows = await executions("custom");
    expect(rows.map((r) => [r.target_key, r.offset_ms, r.distribution])).toEqual(
      keys(5).map((k, i) => [k, i * 10_000, name]),
    );
  });
});

describe("targets, after review", () => {
  it("a target source is one query that only reads: a second statement or a write is refused, a '$' in it is kept, a collated key column works", async () => {
    const table = `"${t.schema}".projects`;
    const bad = [
      `select '1' as key; create table "${t.schema}".pwned (x int)`,
      `select '1' as key) as src, lateral (select 1) as x where (true`,
      `select '1' as key) as src; delete from ${table}; select * from (select '1' as key`,
      `with gone as (delete from ${table} returning id) select id::text as key from gone`,
    ];
    for (const targetSource of bad) {
      await expect(
        t.rota.schedules.upsert({ name: "evil", task: "s", cron: "0 * * * *", targetSource }),
      ).rejects.toMatchObject({ code: "INVALID_TARGET_SOURCE" });
    }
    const left = await t.db.pool.query(
      `select to_regclass('"${t.schema}".pwned') as pwned, (select count(*)::int from ${table}) as projects`,
    );
    expect(left.rows[0]?.pwned).toBeNull();
    expect(left.rows[0]?.projects).toBeGreaterThan(0);
    expect(await t.rota.schedules.get("evil")).toBeNull();
    await t.db.pool.query(
      `create table "${t.schema}".tenants (slug text collate "POSIX" primary key, note text)`,
    );
    await t.db.pool.query(
      `insert into "${t.schema}".tenants values ('a$', 'x$$y'), ('b', '$1'), ('c', null)`,
    );
    const source = `select slug as key from "${t.schema}".tenants where note like '%$%' or note is null`;
    await t.rota.schedules.upsert({
      name: "collated",
      task: "s",
      cron: "0 * * * *",
      targetSource: source,
    });
    expect((await t.rota.schedules.get("collated"))?.targetSource).toBe(source);
    const listed = await t.rota.schedules.targets.list("collated");
    expect(listed.map((r) => r.key)).toEqual(["a$", "b", "c"]);
    // Read again by the orchestrator: the same three, no error noted.
    await t.db.pool.query(`delete from "${t.schema}".tenants where slug = 'b'`);
    const first = (await executions("collated"))[0]?.occurrence_at as Date;
    await clockTo(first);
    await pass();
    expect((await t.rota.schedules.get("collated"))?.lastError).toBeNull();
    expect((await t.rota.schedules.targets.list("collated")).map((r) => r.key)).toEqual([
      "a$",
      "c",
    ]);
  });

  it("a plain key given again leaves a payload and a disabled flag alone; taking the source away takes its targets", async () => {
    await t.db.pool.query(`insert into "${t.schema}".projects values (900, true), (901, true)`);
    await t.rota.schedules.upsert({
      name: "kept",
      task: "s",
      cron: "0 * * * *",
      targetSource: `select id::text as key from "${t.schema}".projects where id >= 900`,
    });
    await t.rota.schedules.targets.add("kept", [
      { key: "own", payload: { depth: 2 }, enabled: false },
      "900",
    ]);
    expect(await t.rota.schedules.targets.add("kept", ["own", "900"])).toEqual({
      added: 0,
      updated: 0,
      existing: 2,
    });
    const byKey = Object.fromEntries(
      (await t.rota.schedules.targets.list("kept")).map((r) => [r.key, r]),
    );
    expect(byKey.own).toMatchObject({ payload: { depth: 2 }, enabled: false });
    // "900" was given by hand, so it is no longer the source's; "901" is.
    expect([byKey["900"]?.fromSource, byKey["901"]?.fromSource]).toEqual([false, true]);
    await t.rota.schedules.upsert({ name: "kept", task: "s", cron: "0 * * * *" });
    expect((await t.rota.schedules.targets.list("kept")).map((r) => r.key)).toEqual(["900", "own"]);
    expect((await executions("kept")).map((r) => r.target_key)).toEqual(["900"]);
  });

  it("a target added by the API takes its slot in the cadence already planned when it is still ahead (random)", async () => {
    await t.rota.schedules.upsert({
      name: "joins",
      task: "s",
      cron: "0 * * * *",
      window: "1h",
      seed: 1,
    });
    await t.rota.schedules.targets.add("joins", keys(50));
    const planned = await executions("joins");
    const occurrence = planned[0]?.occurrence_at as Date;
    // The next cadence is planned once this one's occurrence has passed.
    // Half-way through the window: about half of the new targets' random
    // slots are still ahead (the offsets follow the occurrence, which is the
    // wall clock's hour, so the count varies from run to run; a minute in,
    // all 40 were ahead about half the time).
    await clockTo(new Date(occurrence.getTime() + 30 * 60_000));
    await pass();
    expect(byOccurrence(await executions("joins"))).toHaveLength(2);
    await t.rota.schedules.targets.add("joins", keys(40, "late"));
    const now = await t.rota.clock.now();
    const late = (await executions("joins")).filter((r) => r.target_key.startsWith("late"));
    const [inCurrent, inNext] = [occurrence.getTime(), occurrence.getTime() + 3_600_000].map((o) =>
      late.filter((r) => r.occurrence_at.getTime() === o),
    );
    // Every one in the next cadence; in the current one, those whose slot is ahead.
    expect(inNext).toHaveLength(40);
    expect(inCurrent?.length).toBeGreaterThan(5);
    expect(inCurrent?.length).toBeLessThan(35);
    for (const r of late) expect(r.run_at.getTime()).toBeGreaterThan(now.getTime());
  });

  it("trigger and skip name a target of a schedule with targets", async () => {
    await t.rota.schedules.upsert({
      name: "ops",
      task: "s",
      cron: "0 * * * *",
      window: "1h",
      payload: { a: 1 },
    });
    await t.rota.schedules.targets.add("ops", [{ key: "x", payload: { b: 2 } }, "y"]);
    await expect(t.rota.schedules.trigger("ops")).rejects.toMatchObject({ code: "INVALID_OPTION" });
    await expect(t.rota.schedules.trigger("ops", { target: "nope" })).rejects.toMatchObject({
      code: "TARGET_NOT_FOUND",
    });
    const triggered = await t.rota.schedules.trigger("ops", { target: "x" });
    expect(triggered.targetKey).toBe("x");
    const job = await t.rota.getJob(triggered.executionId);
    expect(job?.payload).toEqual({ a: 1, b: 2 });
    const skipped = await t.rota.schedules.skip("ops", { target: "y" });
    expect(skipped.targetKey).toBe("y");
    expect((await executions("ops", ["skipped"])).map((r) => r.target_key)).toEqual(["y"]);
  });
});

describe("migration 0014", () => {
  it("keeps the version of every schedule written before it: nothing drifts", async () => {
    const { loadMigrations } = await import("../../src/db/migrate.js");
    const { bindSchema } = await import("../../src/db/sql.js");
    const schema = `${t.schema}_v13`;
    const client = await t.db.pool.connect();
    try {
      await client.query(`create schema "${schema}"`);
      for (const m of loadMigrations().filter((m) => m.version <= 13)) {
        await client.query(bindSchema(m.sql, schema));
      }
      await client.query(
        `insert into "${schema}".schedules (name, task, cron, payload, timezone, max_attempts, catch_up_window_ms)
         values ('a', 't', '0 * * * *', '{"x":1}', 'Europe/Berlin', 3, 60000)`,
      );
      await client.query(
        `insert into "${schema}".schedules (name, task, every, anchor, overlap, catch_up)
         values ('b', 't', '90m', '2026-01-05T09:00:00Z', 'skip', 'all')`,
      );
      const before = await client.query(
        `select name, version from "${schema}".schedules order by name`,
      );
      const m14 = loadMigrations().find((m) => m.version === 14);
      await client.query(bindSchema(m14?.sql as string, schema));
      const after = await client.query(
        `select name, version from "${schema}".schedules order by name`,
      );
      expect(before.rows).toHaveLength(2);
      expect(after.rows).toEqual(before.rows);
    } finally {
      await client.query(`drop schema if exists "${schema}" cascade`);
      client.release();
    }
  });
});
