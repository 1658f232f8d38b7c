// Batches: every way a member finishes is counted once on its batch, the
// batch and its members are written in one transaction (the caller's too),
// bad input writes nothing, and `rota batches list|get`.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatchOptions } from "../../src/batches/batch-options.js";
import { jobQueries } from "../../src/db/queries/jobs.js";
import type { EnqueueSpec } from "../../src/queue/enqueue.js";
import { runCli, withoutDatabaseUrl } from "../helpers/cli.js";
import { inTransaction, migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
let pool: pg.Pool;
beforeAll(async () => {
  t = await migratedSchema();
  pool = new pg.Pool({ connectionString: t.url, max: 3 });
});
afterAll(async () => {
  await pool.end();
  await t.drop();
});

async function count(table: "batches" | "jobs"): Promise<number> {
  const result = await pool.query(`select count(*)::int as n from "${t.schema}".${table}`);
  return result.rows[0].n;
}

async function callbacks(task: string): Promise<Record<string, unknown>[]> {
  const result = await pool.query(
    `select payload from "${t.schema}".jobs where task = $1 order by id`,
    [task],
  );
  return result.rows.map((r) => r.payload);
}

describe("counting members", () => {
  it("every way a member finishes counts once: success deleted or kept, a retry not at all, failed for good, rescued on its last attempt, cancelled queued, running or handed back, and a replayed failure taken back", async () => {
    const q = jobQueries(t.schema);
    const worker = { workerId: "w", leaseMs: 60_000, queues: ["paths"], tasks: ["p"] };
    const batch = await t.rota.batches.enqueue(
      Array.from({ length: 9 }, (_, n) => ({
        task: "p",
        payload: { n },
        options: { queue: "paths", maxAttempts: n === 3 ? 1 : 5 },
      })),
      { onComplete: { task: "paths.done", payload: { ok: true } } },
    );
    // m9 stays open until the end, so the batch is open while m8 is replayed.
    const id = (n: number) => batch.jobs[n]?.id as string;
    const [m1, m2, m3, m4, m5, m6, m7, m8, m9] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map(id) as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const claim = async (id: string, leaseMs = 60_000) => {
      const rows = (await t.db.run(q.ClaimOne, { ...worker, id, leaseMs, traced: false })).rows;
      expect(rows.map((r) => r.id)).toEqual([id]);
      return rows[0]?.attempts as number;
    };
    const outcome = { workerId: "w", wake: [] };
    const fail = async (id: string, attempt: number, retryMs: number | null, cancelled = false) =>
      t.db.run(q.Fail, {
        ...outcome,
        ids: [id],
        attempts: [attempt],
        errors: [JSON.stringify({ message: "no" })],
        retryMs: [retryMs],
        cancelled: [cancelled],
      });
    const counts = async () => {
      const b = await t.rota.batches.get(batch.id);
      return [b?.succeeded, b?.failed, b?.cancelled];
    };

    await t.db.run(q.CompleteByDelete, { ...outcome, ids: [m1], attempts: [await claim(m1)] });
    await t.db.run(q.CompleteByKeep, { ...outcome, ids: [m2], attempts: [await claim(m2)] });
    expect(await counts()).toEqual([2, 0, 0]);

    // A failure with a retry left is not an outcome; the last one is.
    await fail(m3, await claim(m3), 0);
    expect(await counts()).toEqual([2, 0, 0]);
    await fail(m3, await claim(m3), null);
    expect(await counts()).toEqual([2, 1, 0]);

    // Its worker vanished on its only attempt: the rescue fails it for good.
    await claim(m4, 1_000);
    await t.rota.clock.shift(2_000);
    expect(await t.rota.rescueExpired()).toMatchObject({ failed: 1 });
    expect(await counts()).toEqual([2, 2, 0]);

    await t.rota.cancel(m5);
    expect(await counts()).toEqual([2, 2, 1]);
    // Cancelled while running: counted when its worker writes it (Fail), not at the request.
    const attempt6 = await claim(m6);
    expect((await t.rota.cancel(m6)).state).toBe("running");
    expect(await counts()).toEqual([2, 2, 1]);
    await fail(m6, attempt6, 5_000, true);
    expect(await counts()).toEqual([2, 2, 2]);
    // Cancelled while in a stopping worker's buffer: handed back cancelled.
    const attempt7 = await claim(m7);
    await pool.query(
      `update "${t.schema}".jobs set cancel_requested_at = now(), started_at = null where id = $1`,
      [m7],
    );
    await t.db.run(q.ReleaseUnstarted, { workerId: "w", ids: [m7], attempts: [attempt7] });
    expect(await counts()).toEqual([2, 2, 3]);

    // Failed for good, then replayed: its failure is taken back, and its
    // success counted instead.
    await fail(m8, await claim(m8), null);
    expect(await counts()).toEqual([2, 3, 3]);
    expect(await t.rota.replayFailed({ ids: [m8] })).toEqual([m8]);
    expect(await counts()).toEqual([2, 2, 3]);
    expect(await callbacks("paths.done")).toEqual([]);
    await t.db.run(q.CompleteByDelete, { ...outcome, ids: [m8], attempts: [await claim(m8)] });
    expect(await counts()).toEqual([3, 2, 3]);
    expect(await callbacks("paths.done")).toEqual([]);
    await t.db.run(q.CompleteByDelete, { ...outcome, ids: [m9], attempts: [await claim(m9)] });

    expect(await callbacks("paths.done")).toEqual([
      {
        batch: batch.id,
        succeeded: 4,
        failed: 2,
        cancelled: 3,
        total: 9,
        expired: false,
        payload: { ok: true },
      },
    ]);
    expect(await t.rota.batches.get(batch.id)).toMatchObject({ state: "finished", pending: 0 });
  });
});

describe("one transaction", () => {
  const members = (n: number): EnqueueSpec[] =>
    Array.from({ length: n }, (_, i) => ({ task: "tx.member", payload: { i } }));

  it("in the caller's transaction rolled back, a batch leaves nothing: short lists (one INSERT) and long ones (COPY)", async () => {
    const batches = await count("batches");
    const jobs = await count("jobs");
    for (const n of [3, 600]) {
      const batch = await inTransaction(
        pool,
        (client) => t.rota.batches.enqueue(members(n), { onComplete: { task: "tx.done" }, client }),
        false,
      );
      expect(batch.jobs).toHaveLength(n);
      expect(await t.rota.batches.get(batch.id)).toBeNull();
    }
    expect(await count("batches")).toBe(batches);
    expect(await count("jobs")).toBe(jobs);
  });

  it("committed, it exists with its members, and is invisible before the commit", async () => {
    for (const n of [3, 600]) {
      const client = await pool.connect();
      try {
        await client.query("begin");
        const batch = await t.rota.batches.enqueue(members(n), {
          onComplete: { task: "tx.done" },
          client,
        });
        expect(await t.rota.batches.get(batch.id)).toBeNull();
        await client.query("commit");
        expect(await t.rota.batches.get(batch.id)).toMatchObject({ total: n, state: "open" });
        const tagged = await pool.query(
          `select count(*)::int as n from "${t.schema}".jobs where batch_id = $1`,
          [batch.id],
        );
        expect(tagged.rows[0].n).toBe(n);
      } finally {
        client.release();
      }
    }
  });

  it("on rota's own connection, members the database refuses roll the batch back (one INSERT or COPY)", async () => {
    // A trigger of the test's own refuses one task: the checks in the
    // process pass, the insert fails after the batch's row was written.
    await pool.query(`create function "${t.schema}".refuse() returns trigger language plpgsql as $$
      begin
        if new.task = 'tx.refused' then raise exception 'refused by the test'; end if;
        return new;
      end $$`);
    await pool.query(`create trigger refuse before insert on "${t.schema}".jobs
      for each row execute function "${t.schema}".refuse()`);
    try {
      const batches = await count("batches");
      const jobs = await count("jobs");
      for (const n of [3, 600]) {
        await expect(
          t.rota.batches.enqueue([...members(n), { task: "tx.refused" }], {
            onComplete: { task: "tx.done" },
          }),
        ).rejects.toThrow(/refused by the test/);
      }
      expect(await count("batches")).toBe(batches);
      expect(await count("jobs")).toBe(jobs);
    } finally {
      await pool.query(`drop trigger refuse on "${t.schema}".jobs`);
    }
  });
});

describe("bad input is refused whole", () => {
  const ok: BatchOptions = { onComplete: { task: "bad.done" } };
  const cases: [string, () => Promise<unknown>, string][] = [
    ["an empty list", () => t.rota.batches.enqueue([], ok), "INVALID_OPTION"],
    [
      "not a list",
      () => t.rota.batches.enqueue({} as unknown as EnqueueSpec[], ok),
      "INVALID_OPTION",
    ],
    [
      "no onComplete",
      () => t.rota.batches.enqueue([{ task: "a" }], {} as BatchOptions),
      "INVALID_OPTION",
    ],
    [
      "onComplete without a task",
      () => t.rota.batches.enqueue([{ task: "a" }], { onComplete: { payload: 1 } } as BatchOptions),
      "INVALID_TASK_NAME",
    ],
    [
      "a bad callback task name",
      () => t.rota.batches.enqueue([{ task: "a" }], { onComplete: { task: "no spaces" } }),
      "INVALID_TASK_NAME",
    ],
    [
      "a bad callback queue",
      () => t.rota.batches.enqueue([{ task: "a" }], { onComplete: { task: "x", queue: "a b" } }),
      "INVALID_QUEUE_NAME",
    ],
    [
      "a callback payload JSON cannot hold",
      () => t.rota.batches.enqueue([{ task: "a" }], { onComplete: { task: "x", payload: 10n } }),
      "INVALID_PAYLOAD",
    ],
    ...[0, -5, 1.5, "60000", Number.POSITIVE_INFINITY].map(
      (expiresInMs) =>
        [
          `expiresInMs ${String(expiresInMs)}`,
          () =>
            t.rota.batches.enqueue([{ task: "a" }], {
              ...ok,
              expiresInMs: expiresInMs as number,
            }),
          "INVALID_OPTION",
        ] as [string, () => Promise<unknown>, string],
    ),
    [
      "a misspelt option",
      () => t.rota.batches.enqueue([{ task: "a" }], { ...ok, expiresIn: 5 } as BatchOptions),
      "INVALID_OPTION",
    ],
    [
      "a member with a unique key",
      () => t.rota.batches.enqueue([{ task: "a" }, { task: "a", options: { uniqueKey: "k" } }], ok),
      "INVALID_OPTION",
    ],
    [
      "a bad member among good ones",
      () => t.rota.batches.enqueue([{ task: "a" }, { task: "a", payload: () => 1 }], ok),
      "INVALID_PAYLOAD",
    ],
    [
      "a bad member in a long list (COPY)",
      () =>
        t.rota.batches.enqueue(
          [
            ...Array.from({ length: 700 }, () => ({ task: "a" })),
            { task: "a", options: { priority: 0.5 } },
          ],
          ok,
        ),
      "INVALID_PRIORITY",
    ],
  ];

  it.each(cases)("%s: a RotaError with its code, and nothing written", async (_, call, code) => {
    const batches = await count("batches");
    const jobs = await count("jobs");
    await expect(call()).rejects.toMatchObject({ name: "RotaError", code });
    expect(await count("batches")).toBe(batches);
    expect(await count("jobs")).toBe(jobs);
  });

  it("with registered tasks, an unknown callback task is refused with the closest name", async () => {
    const { Rota } = await import("../../src/client.js");
    const rota = new Rota({
      connection: t.url,
      schema: t.schema,
      tasks: { "report.done": async () => {}, member: async () => {} },
    });
    try {
      await expect(
        rota.batches.enqueue([{ task: "member" }], { onComplete: { task: "Report.done" } }),
      ).rejects.toMatchObject({ code: "UNKNOWN_TASK", message: /did you mean "report.done"/ });
    } finally {
      await rota.close();
    }
  });
});

describe("list, get and the CLI", () => {
  it("lists by state, newest first; get shows counts and callback; `rota batches list|get [--json]`", async () => {
    const open = await t.rota.batches.enqueue([{ task: "cli.member", options: { queue: "cli" } }], {
      onComplete: { task: "cli.done", queue: "callbacks", payload: { camelCase: 1 } },
      expiresInMs: 3_600_000,
    });
    const done = await t.rota.batches.enqueue([{ task: "cli.member", options: { queue: "cli" } }], {
      onComplete: { task: "cli.done" },
    });
    await t.rota.cancel(done.jobs[0]?.id as string);

    const listed = await t.rota.batches.list({ limit: 10_000 });
    expect(listed.findIndex((b) => b.id === done.id)).toBeLessThan(
      listed.findIndex((b) => b.id === open.id),
    );
    expect((await t.rota.batches.list({ state: "open" })).map((b) => b.id)).toContain(open.id);
    expect((await t.rota.batches.list({ state: "open" })).map((b) => b.id)).not.toContain(done.id);
    expect((await t.rota.batches.list({ state: "finished" })).map((b) => b.id)).toContain(done.id);
    await expect(t.rota.batches.list({ state: "done" as "open" })).rejects.toMatchObject({
      code: "INVALID_OPTION",
    });
    await expect(t.rota.batches.list({ limit: 0 })).rejects.toMatchObject({
      code: "INVALID_OPTION",
    });
    expect(await t.rota.batches.get(open.id)).toMatchObject({
      id: open.id,
      state: "open",
      total: 1,
      pending: 1,
      callbackTask: "cli.done",
      callbackQueue: "callbacks",
      callbackPayload: { camelCase: 1 },
      callbackJobId: null,
      openJobIds: [],
    });
    expect(await t.rota.batches.get("999999999")).toBeNull();
    await expect(t.rota.batches.get("x")).rejects.toMatchObject({ code: "BATCH_NOT_FOUND" });

    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url };
    const cli = (...args: string[]) => runCli(["--schema", t.schema, "batches", ...args], { env });
    const json = await cli("list", "--state", "open", "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toContainEqual(
      expect.objectContaining({ id: open.id, state: "open", callback_task: "cli.done" }),
    );
    const table = await cli("list");
    expect(table.stdout.split("\n")[0]).toMatch(/^id\s+state\s+total\s+succeeded/);
    const one = await cli("get", done.id, "--json");
    expect(JSON.parse(one.stdout)).toMatchObject({
      id: done.id,
      state: "finished",
      cancelled: 1,
      callback_job_id: expect.any(String),
    });
    const camel = JSON.parse((await cli("get", open.id, "--json")).stdout);
    expect(camel.callback_payload).toEqual({ camelCase: 1 });
    const text = await cli("get", open.id);
    expect(text.stdout).toMatch(/callback_task\s+"cli.done"/);
    const missing = await cli("get", "999999999", "--json");
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: "BATCH_NOT_FOUND" } });
  });
});
