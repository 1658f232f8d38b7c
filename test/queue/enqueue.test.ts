import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Rota } from "../../src/client.js";
import { channelName } from "../../src/db/sql.js";
import { isRotaError } from "../../src/errors.js";
import { copyJobs } from "../../src/queue/copy-jobs.js";
import { defineTask } from "../../src/task.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const countJobs = () =>
  withClient(async (c) =>
    Number((await c.query(`select count(*) from "${t.schema}".jobs`)).rows[0].count),
  );

async function refused(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isRotaError(error), `expected a RotaError ${code}, got ${String(error)}`).toBe(true);
  expect((error as { code: string }).code).toBe(code);
}

describe("enqueue", () => {
  it("inserts an available job with its options", async () => {
    const result = await t.rota.enqueue(
      "email.send",
      { to: "a@example.com" },
      { queue: "mail", priority: 5 },
    );
    expect(result).toMatchObject({ state: "available", inserted: true, replaced: false });
    const job = await t.rota.getJob(result.id);
    expect(job).toMatchObject({
      queue: "mail",
      task: "email.send",
      priority: 5,
      payload: { to: "a@example.com" },
    });
    expect(job?.max_attempts).toBe(25);
  });

  it("a delayed job waits in 'scheduled' with run_at by the database clock", async () => {
    const now = await t.rota.clock.now();
    const result = await t.rota.enqueue("later", {}, { delayMs: 60_000 });
    expect(result.state).toBe("scheduled");
    const job = await t.rota.getJob(result.id);
    const delta = (job?.run_at.getTime() ?? 0) - now.getTime();
    expect(delta).toBeGreaterThanOrEqual(59_000);
    expect(delta).toBeLessThan(70_000);
  });

  it("a short enqueueMany list goes in one statement and keeps the order", async () => {
    // Below the COPY threshold (500 jobs, queue/enqueue.ts).
    const specs = Array.from({ length: 400 }, (_, i) => ({ task: "bulk", payload: { i } }));
    let statements = 0;
    const original = t.db.pool.query.bind(t.db.pool);
    // Count statements sent through rota's pool during the call.
    (t.db.pool as unknown as { query: unknown }).query = (...args: unknown[]) => {
      statements++;
      return (original as (...a: unknown[]) => unknown)(...args);
    };
    let results: Awaited<ReturnType<Rota["enqueueMany"]>>;
    try {
      results = await t.rota.enqueueMany(specs);
    } finally {
      (t.db.pool as unknown as { query: unknown }).query = original;
    }
    expect(statements).toBe(1);
    expect(results).toHaveLength(400);
    const first = await t.rota.getJob(results[0]?.id as string);
    const last = await t.rota.getJob(results[399]?.id as string);
    expect(first?.payload).toEqual({ i: 0 });
    expect(last?.payload).toEqual({ i: 399 });
  });

  it("concurrent single enqueues each get their own committed job", async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.rota.enqueue("burst", { i }, { queue: "burst" })),
    );
    const ids = new Set(results.map((r) => r.id));
    expect(ids.size).toBe(200);
    const payloads = await withClient(async (c) =>
      (
        await c.query(`select payload from "${t.schema}".jobs where queue = 'burst' order by id`)
      ).rows.map((r) => r.payload.i),
    );
    expect(payloads.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    for (const [i, result] of results.entries()) {
      expect((await t.rota.getJob(result.id))?.payload).toEqual({ i });
    }
  });

  it("in a group of concurrent enqueues, a row the database refuses fails only its own call", async () => {
    // A constraint rota's validation does not know about, so the row reaches the database.
    await withClient((c) =>
      c.query(
        `alter table "${t.schema}".jobs add constraint no_poison check (payload->>'poison' is null)`,
      ),
    );
    try {
      const calls = Array.from({ length: 20 }, (_, i) =>
        t.rota.enqueue("grouped", i === 7 ? { i, poison: true } : { i }, { queue: "grouped" }),
      );
      const outcomes = await Promise.allSettled(calls);
      const rejected = outcomes.flatMap((o, i) => (o.status === "rejected" ? [i] : []));
      expect(rejected).toEqual([7]);
      const stored = await withClient(async (c) =>
        (
          await c.query(`select payload->>'i' as i from "${t.schema}".jobs where queue = 'grouped'`)
        ).rows
          .map((r) => Number(r.i))
          .sort((a, b) => a - b),
      );
      expect(stored).toEqual(Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 7));
    } finally {
      await withClient((c) => c.query(`alter table "${t.schema}".jobs drop constraint no_poison`));
    }
  });

  it("a unique key keeps the queued job by default", async () => {
    const first = await t.rota.enqueue("sync", { v: 1 }, { uniqueKey: "sync:42" });
    const second = await t.rota.enqueue("sync", { v: 2 }, { uniqueKey: "sync:42" });
    expect(second).toMatchObject({ id: first.id, inserted: false, replaced: false });
    expect((await t.rota.getJob(first.id))?.payload).toEqual({ v: 1 });
  });

  it("onConflict 'replace' coalesces: payload and run time are replaced while the job waits", async () => {
    const first = await t.rota.enqueue("coalesce", { v: 1 }, { uniqueKey: "c:1", delayMs: 60_000 });
    const second = await t.rota.enqueue(
      "coalesce",
      { v: 2 },
      { uniqueKey: "c:1", onConflict: "replace" },
    );
    expect(second).toMatchObject({
      id: first.id,
      inserted: false,
      replaced: true,
      state: "available",
    });
    const job = await t.rota.getJob(first.id);
    expect(job?.payload).toEqual({ v: 2 });
    expect(job?.state).toBe("available");
  });

  it("a unique key is free again once its job has started", async () => {
    const first = await t.rota.enqueue("started", {}, { uniqueKey: "s:1" });
    await withClient((c) =>
      c.query(`update "${t.schema}".jobs set state = 'running' where id = $1`, [first.id]),
    );
    const second = await t.rota.enqueue("started", {}, { uniqueKey: "s:1" });
    expect(second.inserted).toBe(true);
    expect(second.id).not.toBe(first.id);
  });
});

/** Each result's id holds the payload { i } given at its index. */
async function expectInInputOrder(results: { id: string }[], queue: string): Promise<void> {
  const stored = await withClient(async (c) =>
    (
      await c.query(
        `select id::text, (payload->>'i')::int as i from "${t.schema}".jobs where queue = $1`,
        [queue],
      )
    ).rows.map((r) => [r.id as string, r.i as number] as const),
  );
  expect(stored).toHaveLength(results.length);
  const byId = new Map(stored);
  expect(results.map((r) => byId.get(r.id))).toEqual(results.map((_, i) => i));
}

/** Collects the NOTIFY payloads sent on this schema's jobs channel while `fn` runs. */
async function wakesDuring(fn: () => Promise<unknown>): Promise<string[]> {
  return withClient(async (c) => {
    const seen: string[] = [];
    c.on("notification", (n) => seen.push(n.payload ?? ""));
    await c.query(`listen "${channelName(t.schema, "jobs")}"`);
    await fn();
    // A round trip on the listening connection delivers what is pending.
    await c.query("select 1");
    return seen;
  });
}

describe("enqueueMany by COPY (lists of 500 jobs or more without unique keys)", () => {
  it("keeps the input order, and sends one wake-up", async () => {
    const specs = Array.from({ length: 3000 }, (_, i) => ({
      task: "copied",
      payload: { i },
      options: { queue: "copy.order" },
    }));
    let results: Awaited<ReturnType<Rota["enqueueMany"]>> = [];
    const wakes = await wakesDuring(async () => {
      results = await t.rota.enqueueMany(specs);
    });
    expect(results).toHaveLength(3000);
    expect(results.every((r) => r.state === "available" && r.inserted && !r.replaced)).toBe(true);
    await expectInInputOrder(results, "copy.order");
    expect(wakes).toEqual(["copy.order"]);
  });

  it("uses the ids as drawn when another session drew in between", async () => {
    // Ids not in one ascending run (here: drawn, then listed backwards):
    // DrawIds sends the list, and the rows get them in list order.
    const drawn = await withClient(
      async (c) =>
        (
          await c.query(
            `select string_agg(id::text, ',' order by id desc) as ids from (
             select nextval('"${t.schema}".jobs_id_seq'::regclass) as id from generate_series(1, 3)
           ) as d`,
          )
        ).rows[0].ids as string,
    );
    const now = await t.rota.clock.now();
    const jobs = [0, 1, 2].map((i) => ({
      queue: "copy.ids",
      task: "copied",
      payload: JSON.stringify({ i }),
      priority: 0,
      delayMs: null,
      runAt: null,
      maxAttempts: 25,
      backoff: null,
      timeoutMs: null,
      uniqueKey: null,
      conflict: "keep" as const,
      concurrencyKey: null,
      concurrencyLimit: null,
      traceContext: null,
    }));
    const client = await t.db.connect();
    try {
      const copied = await copyJobs(
        t.db,
        { count: jobs.length, prepare: (start, end) => jobs.slice(start, end) },
        Promise.resolve({ first: "0", ids: drawn, now_us: String(now.getTime() * 1000) }),
        client,
      );
      expect(copied.ids).toEqual(drawn.split(","));
      await expectInInputOrder(
        copied.ids.map((id) => ({ id })),
        "copy.ids",
      );
    } finally {
      client.release();
    }
  });

  it("draws the ids again as a list when they did not come in one run", async () => {
    // A sequence stepping by 2 draws ids that are never contiguous, as when
    // other sessions draw in between: DrawIds sees it, DrawIdList lists them.
    const sequence = `"${t.schema}".jobs_id_seq`;
    await withClient((c) => c.query(`alter sequence ${sequence} increment by 2`));
    try {
      const results = await t.rota.enqueueMany(
        Array.from({ length: 700 }, (_, i) => ({
          task: "copied",
          payload: { i },
          options: { queue: "copy.stepped" },
        })),
      );
      const ids = results.map((r) => BigInt(r.id));
      expect(ids.slice(1).every((id, i) => id - (ids[i] as bigint) === 2n)).toBe(true);
      await expectInInputOrder(results, "copy.stepped");
    } finally {
      await withClient((c) => c.query(`alter sequence ${sequence} increment by 1`));
    }
  });

  it("stores edge values exactly as the INSERT path does: extreme numbers, 4-byte characters, far run times, fractional delays", async () => {
    type Spec = { task: string; payload: unknown; options: Record<string, unknown> };
    const edges: Spec[] = [
      {
        task: "edge",
        payload: { s: "é✓\u{1F600}".repeat(200) },
        options: { priority: -2147483647 },
      },
      {
        task: "edge",
        payload: { s: `${"a".repeat(600)}\u{10FFFF}`, k: ["ü", 1.5, null, true] },
        options: { priority: 2147483647, maxAttempts: 2147483647, timeoutMs: 2147483647 },
      },
      { task: "edge", payload: {}, options: { backoff: { kind: "fixed", delayMs: 1234 } } },
      ...[
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.001Z",
        "2300-06-01T00:00:00.001Z",
        "5000-01-01T00:00:00.001Z",
        "9999-12-31T23:59:59.999Z",
      ].map((at) => ({ task: "edge.at", payload: {}, options: { runAt: new Date(at) } })),
      // PostgreSQL rounds make_interval to the microsecond half to even.
      ...[0.0005, 0.0015, 0.0025, 1.0005, 2.5e-3, 1e13 + 0.5].map((delayMs) => ({
        task: "edge.delay",
        payload: {},
        options: { delayMs },
      })),
    ];
    const stored = (queue: string) =>
      withClient(async (c) =>
        (
          await c.query(
            `select payload::text, state, priority, max_attempts, timeout_ms, backoff::text, task,
                      to_char(run_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as run_at,
                      ((extract(epoch from run_at) - extract(epoch from created_at)) * 1000000)::numeric(30)::text as delay_us
               from "${t.schema}".jobs where queue = $1 order by id`,
            [queue],
          )
        ).rows.map((row) =>
          // A run time given is compared as it is; one from the clock, as a delay.
          row.task === "edge.at" ? { ...row, delay_us: undefined } : { ...row, run_at: undefined },
        ),
      );
    // A short list goes in by InsertPlain; the same jobs first in a long one by COPY.
    await t.rota.enqueueMany(
      edges.map((e) => ({ ...e, options: { ...e.options, queue: "edge.insert" } })),
    );
    await t.rota.enqueueMany([
      ...edges.map((e) => ({ ...e, options: { ...e.options, queue: "edge.copy" } })),
      ...Array.from({ length: 600 }, (_, i) => ({
        task: "pad",
        payload: { i },
        options: { queue: "edge.pad" },
      })),
    ]);
    const viaInsert = await stored("edge.insert");
    expect(viaInsert).toHaveLength(edges.length);
    expect(await stored("edge.copy")).toEqual(viaInsert);
  });

  it("a bad job after a pending async schema check leaves no unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const slow = defineTask({
        name: "copied.slowcheck",
        schema: z.object({ i: z.number() }).refine(async () => {
          await new Promise((resolve) => setImmediate(resolve));
          return false;
        }, "never"),
        handler: async () => {},
      });
      for (const length of [3, 800]) {
        const specs = [
          { task: slow, payload: { i: 0 } },
          { task: "copied", payload: { n: Number.NaN } },
          ...Array.from({ length }, (_, i) => ({ task: "copied", payload: { i } })),
        ];
        await refused(t.rota.enqueueMany(specs), "INVALID_PAYLOAD");
      }
      // Let the abandoned checks settle, then look.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("computes states and run times as the INSERT statements do, and stores payloads exactly", async () => {
    const now = await t.rota.clock.now();
    const past = new Date(now.getTime() - 60_000);
    const future = new Date(now.getTime() + 3_600_000);
    const awkward = {
      s: 'tab\there "quoted" back\\slash \\N new\nline é ✓ \u2028',
      n: [1.5, -2e-7],
    };
    const specs = Array.from({ length: 600 }, (_, i) => ({
      task: "copied",
      payload: i === 5 ? { ...awkward, i } : { i },
      options:
        i % 4 === 1
          ? { queue: "copy.time", delayMs: 90_000.5 }
          : i % 4 === 2
            ? { queue: "copy.time", runAt: future, priority: -3, timeoutMs: 5000 }
            : i % 4 === 3
              ? {
                  queue: "copy.time",
                  runAt: past,
                  backoff: { kind: "fixed" as const, delayMs: 10 },
                }
              : { queue: "copy.time", maxAttempts: 3 },
    }));
    const results = await t.rota.enqueueMany(specs);
    await expectInInputOrder(results, "copy.time");
    const row = (id: string) =>
      withClient(
        async (c) =>
          (
            await c.query(
              `select payload, state, run_at, created_at, priority, max_attempts, backoff, timeout_ms,
                      extract(epoch from run_at - created_at) * 1000 as delay_ms
               from "${t.schema}".jobs where id = $1`,
              [id],
            )
          ).rows[0],
      );
    const plain = await row(results[0]?.id as string);
    expect(results[0]?.state).toBe("available");
    expect(plain).toMatchObject({
      state: "available",
      max_attempts: 3,
      backoff: null,
      timeout_ms: null,
    });
    expect(plain.run_at.getTime()).toBe(plain.created_at.getTime());
    expect(Math.abs(plain.created_at.getTime() - now.getTime())).toBeLessThan(10_000);
    const delayed = await row(results[1]?.id as string);
    expect(results[1]?.state).toBe("scheduled");
    expect(delayed.state).toBe("scheduled");
    expect(Number(delayed.delay_ms)).toBeCloseTo(90_000.5, 3);
    const later = await row(results[2]?.id as string);
    expect(results[2]?.state).toBe("scheduled");
    expect(later).toMatchObject({ state: "scheduled", priority: -3, timeout_ms: 5000 });
    expect(later.run_at.getTime()).toBe(future.getTime());
    const overdue = await row(results[3]?.id as string);
    expect(results[3]?.state).toBe("available");
    expect(overdue.state).toBe("available");
    expect(overdue.run_at.getTime()).toBe(past.getTime());
    expect(overdue.backoff).toEqual({ kind: "fixed", delayMs: 10 });
    expect((await row(results[5]?.id as string)).payload).toEqual({ ...awkward, i: 5 });
  });

  it("a row the database refuses fails the whole call and writes nothing; the pool stays usable", async () => {
    await withClient((c) =>
      c.query(
        `alter table "${t.schema}".jobs add constraint no_poison_copy check (payload->>'poison' is null)`,
      ),
    );
    try {
      const specs = Array.from({ length: 800 }, (_, i) => ({
        task: "copied",
        payload: i === 700 ? { i, poison: true } : { i },
        options: { queue: "copy.bad" },
      }));
      await expect(t.rota.enqueueMany(specs)).rejects.toThrow(/no_poison_copy/);
      const stored = await withClient(async (c) =>
        Number(
          (await c.query(`select count(*) from "${t.schema}".jobs where queue = 'copy.bad'`))
            .rows[0].count,
        ),
      );
      expect(stored).toBe(0);
    } finally {
      await withClient((c) =>
        c.query(`alter table "${t.schema}".jobs drop constraint no_poison_copy`),
      );
    }
    // Every pooled connection still works (none was left mid-COPY).
    const again = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        t.rota.enqueueMany(
          Array.from({ length: 500 }, (_, i) => ({
            task: "copied",
            payload: { i },
            options: { queue: `copy.again.${n}` },
          })),
        ),
      ),
    );
    expect(again.flat()).toHaveLength(6000);
  });

  it("bad input in a long list is refused with nothing written, even once rows have streamed; the pool stays usable", async () => {
    const before = await countJobs();
    // Jobs are checked a chunk at a time while the COPY streams: the bad one
    // here comes after 2,999 good rows have been sent, and aborts the COPY.
    const specs = Array.from({ length: 3000 }, (_, i) => ({
      task: "copied",
      payload: i === 2999 ? { n: Number.NaN } : { i },
    }));
    await refused(t.rota.enqueueMany(specs), "INVALID_PAYLOAD");
    expect(await countJobs()).toBe(before);
    // A key a job does not take, late in a long list: refused the same way.
    await refused(
      t.rota.enqueueMany(
        Array.from({ length: 3000 }, (_, i) =>
          i === 2999
            ? ({ task: "copied", payload: { i }, queue: "q" } as never)
            : { task: "copied", payload: { i } },
        ),
      ),
      "INVALID_OPTION",
    );
    expect(await countJobs()).toBe(before);
    // An async schema check that fails mid-list does the same.
    const checked = defineTask({
      name: "copied.checked",
      schema: z.object({ i: z.number() }).refine(async (p) => p.i !== 1500, "no 1500"),
      handler: async () => {},
    });
    await refused(
      t.rota.enqueueMany(
        Array.from({ length: 2000 }, (_, i) => ({ task: checked, payload: { i } })),
      ),
      "INVALID_PAYLOAD",
    );
    expect(await countJobs()).toBe(before);
    // Every pooled connection still works (the aborted COPY left none unusable).
    const again = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        t.rota.enqueueMany(
          Array.from({ length: 500 }, (_, i) => ({
            task: "copied",
            payload: { i },
            options: { queue: `copy.after.bad.${n}` },
          })),
        ),
      ),
    );
    expect(again.flat()).toHaveLength(6000);
  });

  it("stores long and non-ASCII text, times before 2000, and ids beyond 2^53 exactly", async () => {
    const long = "x".repeat(3000);
    const wide = `${"é✓".repeat(400)} \u{1F600} ${"ü".repeat(300)}`;
    const old = new Date("1999-12-31T23:59:59.999Z");
    const specs = Array.from({ length: 600 }, (_, i) => ({
      task: i === 3 ? "copied.ünïcode" : "copied",
      payload: i === 0 ? { long, i } : i === 1 ? { wide, i } : { i },
      options: i === 2 ? { queue: "copy.text", runAt: old } : { queue: "copy.text" },
    }));
    await refused(t.rota.enqueueMany(specs), "INVALID_TASK_NAME");
    specs[3] = { task: "copied", payload: { i: 3 }, options: { queue: "copy.text" } };
    const results = await t.rota.enqueueMany(specs);
    expect((await t.rota.getJob(results[0]?.id as string))?.payload).toEqual({ long, i: 0 });
    expect((await t.rota.getJob(results[1]?.id as string))?.payload).toEqual({ wide, i: 1 });
    expect((await t.rota.getJob(results[2]?.id as string))?.run_at.getTime()).toBe(old.getTime());
    await expectInInputOrder(results, "copy.text");

    // Ids past the safe integers take the exact (BigInt) path. (The sequence
    // is put back afterwards: the ids between are unused.)
    const sequence = `'"${t.schema}".jobs_id_seq'::regclass`;
    const last = await withClient(
      async (c) => (await c.query(`select nextval(${sequence})::text as id`)).rows[0].id as string,
    );
    await withClient((c) => c.query(`select setval(${sequence}, 9007199254740900)`));
    const big = await t.rota.enqueueMany(
      Array.from({ length: 600 }, (_, i) => ({
        task: "copied",
        payload: { i },
        options: { queue: "copy.bigid" },
      })),
    );
    expect(big[0]?.id).toBe("9007199254740901");
    expect(big[599]?.id).toBe("9007199254741500");
    const stored = await withClient(
      async (c) =>
        (
          await c.query(
            `select id::text, (payload->>'i')::int as i from "${t.schema}".jobs
             where queue = 'copy.bigid' order by id`,
          )
        ).rows,
    );
    expect(stored.map((r) => r.id)).toEqual(big.map((r) => r.id));
    expect(stored.map((r) => r.i)).toEqual(Array.from({ length: 600 }, (_, i) => i));
    await withClient((c) => c.query(`select setval(${sequence}, $1::bigint)`, [last]));
  });

  it("inside the caller's transaction: gone on rollback, there on commit, woken on commit", async () => {
    const specs = (queue: string) =>
      Array.from({ length: 1000 }, (_, i) => ({
        task: "copied",
        payload: { i },
        options: { queue },
      }));
    await withClient(async (client) => {
      await client.query("begin");
      const rolledBack = await t.rota.enqueueMany(specs("copy.tx.rollback"), { client });
      expect(rolledBack).toHaveLength(1000);
      await client.query("rollback");
      expect(await t.rota.getJob(rolledBack[0]?.id as string)).toBeNull();
      let committed: Awaited<ReturnType<Rota["enqueueMany"]>> = [];
      const wakes = await wakesDuring(async () => {
        await client.query("begin");
        committed = await t.rota.enqueueMany(specs("copy.tx.commit"), { client });
        // Invisible to others, and nobody woken, until the caller commits.
        expect(await t.rota.getJob(committed[0]?.id as string)).toBeNull();
        await client.query("commit");
      });
      await expectInInputOrder(committed, "copy.tx.commit");
      expect(wakes).toEqual(["copy.tx.commit"]);
    });
  });
});

describe("grouped single enqueues", () => {
  it("wake the workers of their queues after the commit", async () => {
    await withClient(async (c) => {
      const seen: string[] = [];
      c.on("notification", (n) => seen.push(n.payload ?? ""));
      await c.query(`listen "${channelName(t.schema, "jobs")}"`);
      await Promise.all([
        t.rota.enqueue("woken", {}, { queue: "wake.a" }),
        t.rota.enqueue("woken", {}, { queue: "wake.b" }),
        t.rota.enqueue("woken", {}, { queue: "wake.later", delayMs: 60_000 }),
      ]);
      // Wake follows the commit, after the callers are answered: wait for
      // it with round trips on the listening connection, not with a sleep.
      const deadline = Date.now() + 5000;
      while (!["wake.a", "wake.b", "wake.later"].every((q) => seen.includes(q))) {
        if (Date.now() > deadline) break;
        await c.query("select 1"); // a round trip delivers pending notifications
      }
      expect(seen).toContain("wake.a");
      expect(seen).toContain("wake.b");
      // A delayed job wakes its queue too: an idle worker then sleeps until it is due.
      expect(seen).toContain("wake.later");
    });
  });
});

describe("enqueues inside the caller's transaction", () => {
  it("send one wake-up per queue at commit, however many jobs", async () => {
    await withClient(async (client) => {
      const wakes = await wakesDuring(async () => {
        await client.query("begin");
        for (let n = 0; n < 50; n++) {
          await t.rota.enqueue("woken", { n }, { queue: "wake.tx", client });
        }
        await client.query("commit");
      });
      // Identical payloads in one transaction are folded by PostgreSQL; a
      // wake-up naming each job would not be.
      expect(wakes).toEqual(["wake.tx"]);
    });
  });
});

describe("a lone single enqueue", () => {
  it("wakes the workers of its queue from its own statement: the wake-up is committed with it", async () => {
    let id = "";
    // Delivered at the commit, before enqueue resolved: the one round trip
    // wakesDuring makes after it picks it up. It names the job, so an idle
    // worker can claim it by id.
    const wakes = await wakesDuring(async () => {
      ({ id } = await t.rota.enqueue("woken", {}, { queue: "wake.lone" }));
    });
    expect(wakes).toEqual([`wake.lone ${id}`]);
  });
});

describe("wake-ups of jobs due later", () => {
  // A statement that commits by itself on rota's own connection says when a
  // queue whose new jobs are all delayed has the first of them due, and idle
  // workers sleep until then instead of claiming at once.
  it("a lone delayed enqueue says in how many milliseconds its job is due", async () => {
    const wakes = await wakesDuring(() =>
      t.rota.enqueue("woken", {}, { queue: "due.lone", delayMs: 60_000 }),
    );
    expect(wakes).toEqual(["due.lone +60000"]);
  });

  it("a list says it per queue: the earliest delay, or due now when any job is", async () => {
    const wakes = await wakesDuring(() =>
      t.rota.enqueueMany([
        { task: "woken", payload: {}, options: { queue: "due.list.a", delayMs: 5_000 } },
        { task: "woken", payload: {}, options: { queue: "due.list.a", delayMs: 2_000 } },
        { task: "woken", payload: {}, options: { queue: "due.list.b", delayMs: 9_000 } },
        { task: "woken", payload: {}, options: { queue: "due.list.b" } },
        { task: "woken", payload: {}, options: { queue: "due.list.c", runAt: new Date(0) } },
      ]),
    );
    expect(wakes.sort()).toEqual(["due.list.a +2000", "due.list.b", "due.list.c"]);
  });

  it("a list with unique keys says it too", async () => {
    const wakes = await wakesDuring(() =>
      t.rota.enqueueMany([
        {
          task: "woken",
          payload: {},
          options: { queue: "due.keyed", delayMs: 3_000, uniqueKey: "due-keyed-1" },
        },
      ]),
    );
    expect(wakes).toEqual(["due.keyed +3000"]);
  });

  it("a COPY says it, less the time the COPY took", async () => {
    const specs = Array.from({ length: 600 }, (_, i) => ({
      task: "woken",
      payload: { i },
      options: { queue: "due.copy", delayMs: 30_000 + i },
    }));
    const wakes = await wakesDuring(() => t.rota.enqueueMany(specs));
    expect(wakes).toHaveLength(1);
    const [queue, due] = (wakes[0] as string).split(" +");
    expect(queue).toBe("due.copy");
    expect(Number(due)).toBeGreaterThan(25_000);
    // Less than the delay: the milliseconds the COPY took are taken off.
    expect(Number(due)).toBeLessThan(30_000);
  });

  it("inside the caller's transaction, delivered at its commit, it names only the queue", async () => {
    await withClient(async (client) => {
      const wakes = await wakesDuring(async () => {
        await client.query("begin");
        await t.rota.enqueue("woken", {}, { queue: "due.tx", delayMs: 60_000, client });
        await client.query("commit");
      });
      expect(wakes).toEqual(["due.tx"]);
    });
  });

  it("the orchestrator's planned executions say when the first is due; an API call's only the queue", async () => {
    // Inline in the upsert's transaction: delivered at its commit.
    const inline = await wakesDuring(() =>
      t.rota.schedules.upsert({
        name: "due-planned",
        task: "woken",
        queue: "due.planned",
        cron: "* * * * *",
        horizon: 2,
      }),
    );
    expect(inline).toEqual(["due.planned"]);
    // A minute on, the orchestrator's pass plans the next one by itself.
    await t.rota.clock.shift(60_000);
    try {
      const orchestrator = t.rota.orchestrator({ holder: "due-planned", leaseTtlMs: 60_000 });
      const ticked = await wakesDuring(() => orchestrator.tick());
      expect(ticked).toHaveLength(1);
      const [queue, due] = (ticked[0] as string).split(" +");
      expect(queue).toBe("due.planned");
      // The third minute mark from the upsert: one to two minutes away.
      expect(Number(due)).toBeGreaterThan(60_000);
      expect(Number(due)).toBeLessThanOrEqual(120_000);
      await t.rota.schedules.remove("due-planned");
    } finally {
      await t.rota.clock.reset();
    }
  });
});

describe("bad input is refused with a code and nothing is written", () => {
  it.each([
    ["negative delay", () => t.rota.enqueue("x", {}, { delayMs: -1 }), "INVALID_RUN_AT"],
    ["invalid date", () => t.rota.enqueue("x", {}, { runAt: new Date("nope") }), "INVALID_RUN_AT"],
    ["bad queue name", () => t.rota.enqueue("x", {}, { queue: "no spaces" }), "INVALID_QUEUE_NAME"],
    ["empty queue name", () => t.rota.enqueue("x", {}, { queue: "" }), "INVALID_QUEUE_NAME"],
    ["max attempts 0", () => t.rota.enqueue("x", {}, { maxAttempts: 0 }), "INVALID_MAX_ATTEMPTS"],
    [
      "max attempts 1.5",
      () => t.rota.enqueue("x", {}, { maxAttempts: 1.5 }),
      "INVALID_MAX_ATTEMPTS",
    ],
    ["bad task name", () => t.rota.enqueue("bad task", {}), "INVALID_TASK_NAME"],
    ["function in payload", () => t.rota.enqueue("x", { f: () => 1 }), "INVALID_PAYLOAD"],
    ["bigint in payload", () => t.rota.enqueue("x", { n: 1n }), "INVALID_PAYLOAD"],
    ["NaN in payload", () => t.rota.enqueue("x", { n: Number.NaN }), "INVALID_PAYLOAD"],
    ["NUL character in payload", () => t.rota.enqueue("x", { s: "a\u0000b" }), "INVALID_PAYLOAD"],
    ["NUL character in a key", () => t.rota.enqueue("x", { "a\u0000": 1 }), "INVALID_PAYLOAD"],
    [
      "unpaired surrogate in payload",
      () => t.rota.enqueue("x", { s: "ab\ud800" }),
      "INVALID_PAYLOAD",
    ],
    [
      "unpaired surrogate in a long list (COPY)",
      () =>
        t.rota.enqueueMany(
          Array.from({ length: 600 }, (_, i) => ({
            task: "x",
            payload: { s: i === 599 ? "\udc00" : "fine" },
          })),
        ),
      "INVALID_PAYLOAD",
    ],
    [
      "circular payload",
      () => {
        const p: Record<string, unknown> = {};
        p.self = p;
        return t.rota.enqueue("x", p);
      },
      "INVALID_PAYLOAD",
    ],
    [
      "payload over the limit",
      () => t.rota.enqueue("x", { s: "x".repeat(1024 * 1024) }),
      "PAYLOAD_TOO_LARGE",
    ],
    [
      "bad backoff",
      () => t.rota.enqueue("x", {}, { backoff: { kind: "linear" } as never }),
      "INVALID_OPTION",
    ],
    [
      "one bad job in enqueueMany",
      () =>
        t.rota.enqueueMany([
          { task: "ok", payload: {} },
          { task: "ok", payload: {}, options: { queue: "bad queue" } },
        ]),
      "INVALID_QUEUE_NAME",
    ],
    [
      "a misspelt option (delay for delayMs)",
      () => t.rota.enqueue("x", {}, { delay: 5_000 } as never),
      "INVALID_OPTION",
    ],
    [
      "an option beside the job in enqueueMany instead of in its options",
      () => t.rota.enqueueMany([{ task: "ok", payload: {}, queue: "elsewhere" } as never]),
      "INVALID_OPTION",
    ],
    [
      "duplicate unique key in enqueueMany",
      () =>
        t.rota.enqueueMany([
          { task: "ok", payload: {}, options: { uniqueKey: "k" } },
          { task: "ok", payload: {}, options: { uniqueKey: "k" } },
        ]),
      "INVALID_OPTION",
    ],
  ])("%s", async (_name, call, code) => {
    const before = await countJobs();
    await refused(call(), code);
    expect(await countJobs()).toBe(before);
  });

  it("what only looks like an unstorable character is stored as given", async () => {
    // The six characters \u0000 typed out, and a surrogate pair (one emoji).
    const payload = { typed: "\\u0000 and \\\\u0000", emoji: "\ud83d\ude00" };
    const { id } = await t.rota.enqueue("x", payload, { queue: "stored.as.given" });
    expect((await t.rota.getJob(id))?.payload).toEqual(payload);
  });

  it("a custom payload limit applies", async () => {
    const small = new Rota({ connection: t.url, schema: t.schema, payloadLimitBytes: 100 });
    try {
      await refused(small.enqueue("x", { s: "x".repeat(200) }), "PAYLOAD_TOO_LARGE");
      expect((await small.enqueue("x", { s: "ok" })).inserted).toBe(true);
    } finally {
      await small.close();
    }
  });

  it("with registered tasks, an unknown task is refused (with a suggestion)", async () => {
    const registered = new Rota({
      connection: t.url,
      schema: t.schema,
      tasks: { "email.send": async () => {} },
    });
    try {
      const before = await countJobs();
      const error = await registered.enqueue("Email.send", {}).catch((e: unknown) => e);
      expect(isRotaError(error, "UNKNOWN_TASK")).toBe(true);
      expect((error as Error).message).toContain('did you mean "email.send"');
      expect(await countJobs()).toBe(before);
    } finally {
      await registered.close();
    }
  });
});

describe("typed tasks with Standard Schema payloads", () => {
  const zodTask = defineTask({
    name: "typed.zod",
    schema: z.object({ userId: z.number().int(), note: z.string().default("none") }),
    handler: async (payload) => {
      // The handler's payload type is the schema's output.
      const id: number = payload.userId;
      const note: string = payload.note;
      return { id, note };
    },
  });
  const valibotTask = defineTask({
    name: "typed.valibot",
    schema: v.object({ email: v.pipe(v.string(), v.email()) }),
    handler: async (payload) => payload.email.toLowerCase(),
  });

  it("accepts a valid payload (zod and valibot)", async () => {
    expect((await t.rota.enqueue(zodTask, { userId: 7 })).inserted).toBe(true);
    expect((await t.rota.enqueue(valibotTask, { email: "A@example.com" })).inserted).toBe(true);
  });

  it("refuses an invalid payload at enqueue with the schema's issues, writing nothing", async () => {
    const before = await countJobs();
    const zodError = await t.rota
      .enqueue(zodTask, { userId: "seven" } as never)
      .catch((e: unknown) => e);
    expect(isRotaError(zodError, "INVALID_PAYLOAD")).toBe(true);
    expect((zodError as Error).message).toContain("userId");
    const valibotError = await t.rota
      .enqueue(valibotTask, { email: "not-an-email" })
      .catch((e: unknown) => e);
    expect(isRotaError(valibotError, "INVALID_PAYLOAD")).toBe(true);
    expect(await countJobs()).toBe(before);
  });
});
