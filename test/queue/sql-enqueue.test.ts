// Enqueue from SQL (migration 0015, docs/sql-enqueue.md): rota's enqueue
// function refuses what the TypeScript enqueue refuses, with the same codes
// and nothing written; its jobs run on a rota worker; from a trigger it is
// part of the user's transaction; unique keys behave as in TypeScript, also
// between two transactions at once; a listening worker is woken.
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { channelName } from "../../src/db/sql.js";
import { isRotaError } from "../../src/errors.js";
import { silentLogger } from "../../src/logger.js";
import type { JobRecord } from "../../src/queue/job-admin.js";
import type { Worker, WorkerOptions } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

let t: TestSchema;
/** The application's connections: the SQL function is called on these, not on rota's pool. */
let app: pg.Pool;
const workers: Worker[] = [];
beforeAll(async () => {
  t = await migratedSchema();
  app = new pg.Pool({ connectionString: t.url, max: 6 });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await app.end();
  await t.drop();
});

type Options = Record<string, unknown> | unknown[] | string | null;

/**
 * `<schema>.enqueue(task, payload, options)` on `client`: the job's id.
 * A payload or options left undefined are left out of the call (their
 * defaults); null is SQL NULL.
 */
async function sqlEnqueue(
  task: string | null,
  payload?: unknown,
  options?: Options,
  client: pg.ClientBase | pg.Pool = app,
): Promise<string> {
  const args: unknown[] = [task];
  if (payload !== undefined || options !== undefined) {
    args.push(json(payload === undefined ? {} : payload));
  }
  if (options !== undefined) args.push(json(options));
  const casts = ["$1::text", "$2::jsonb", "$3::jsonb"].slice(0, args.length);
  const result = await client.query(
    `select "${t.schema}".enqueue(${casts.join(", ")})::text as id`,
    args,
  );
  return result.rows[0].id;
}

/** JSON text for a jsonb parameter; null stays SQL NULL. */
function json(value: unknown): string | null {
  return value === null ? null : JSON.stringify(value);
}

/** The rota code at the end of a message from the SQL function ("... [CODE]"). */
function codeOf(error: unknown): string | undefined {
  return /\[([A-Z_]+)\]$/.exec((error as Error).message ?? "")?.[1];
}

async function refusedBySql(call: Promise<unknown>, code: string): Promise<pg.DatabaseError> {
  const error = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected a refusal ${code}`).toBeInstanceOf(pg.DatabaseError);
  expect((error as pg.DatabaseError).code).toBe("22023");
  expect(codeOf(error), (error as Error).message).toBe(code);
  return error as pg.DatabaseError;
}

const countJobs = async (): Promise<number> =>
  Number((await app.query(`select count(*) from "${t.schema}".jobs`)).rows[0].count);

/** The job as the TypeScript API shows it (it must exist). */
async function jobOf(id: string): Promise<JobRecord> {
  const job = await t.rota.getJob(id);
  expect(job, `job ${id}`).not.toBeNull();
  return job as JobRecord;
}

async function startWorker(options: Partial<WorkerOptions> & Pick<WorkerOptions, "tasks">) {
  const worker = t.rota.worker({ logger: silentLogger, rescueIntervalMs: 0, ...options });
  workers.push(worker);
  await worker.start();
  return worker;
}

/** The TypeScript spelling of SQL options (unique_key → uniqueKey). */
function camel(options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(options).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]),
  );
}

const LIMIT = 1024 * 1024;

describe("bad input is refused with rota's code, and nothing is written", () => {
  // [what, task, payload, options, code, and whether the TypeScript enqueue
  // takes the same arguments (with camelCase keys) to compare with]
  const cases: [string, string | null, unknown, Options, string, boolean][] = [
    ["a task name with a space", "x y", {}, {}, "INVALID_TASK_NAME", true],
    ["an empty task name", "", {}, {}, "INVALID_TASK_NAME", true],
    ["a task name of 129 characters", "t".repeat(129), {}, {}, "INVALID_TASK_NAME", true],
    ["a task name with a newline at its end", "email.send\n", {}, {}, "INVALID_TASK_NAME", true],
    ["a null task", null, {}, {}, "INVALID_TASK_NAME", true],
    ["a null payload", "t", null, {}, "INVALID_PAYLOAD", false],
    ["null options", "t", {}, null, "INVALID_OPTION", false],
    // (The TypeScript enqueue takes an empty array for no options.)
    ["options that are an array", "t", {}, [], "INVALID_OPTION", false],
    ["options that are a string", "t", {}, "mail", "INVALID_OPTION", true],
    ["an unknown option", "t", {}, { colour: "red" }, "INVALID_OPTION", true],
    ["the TypeScript spelling of an option", "t", {}, { maxAttempts: 3 }, "INVALID_OPTION", false],
    ["an option SQL does not take", "t", {}, { timeout_ms: 5 }, "INVALID_OPTION", false],
    ["a queue name with a space", "t", {}, { queue: "a b" }, "INVALID_QUEUE_NAME", true],
    ["an empty queue name", "t", {}, { queue: "" }, "INVALID_QUEUE_NAME", true],
    ["a queue name that is a number", "t", {}, { queue: 5 }, "INVALID_QUEUE_NAME", true],
    ["a queue name with a slash", "t", {}, { queue: "a/b" }, "INVALID_QUEUE_NAME", true],
    [
      "run_at and delay_ms together",
      "t",
      {},
      { run_at: "2030-01-01T00:00:00Z", delay_ms: 5 },
      "INVALID_RUN_AT",
      false,
    ],
    ["run_at that is not a time", "t", {}, { run_at: "tomorrow" }, "INVALID_RUN_AT", false],
    [
      "run_at on a day that does not exist",
      "t",
      {},
      { run_at: "2030-02-30T09:00:00Z" },
      "INVALID_RUN_AT",
      false,
    ],
    [
      "run_at without its offset",
      "t",
      {},
      { run_at: "2030-01-01T09:00:00" },
      "INVALID_RUN_AT",
      false,
    ],
    ["run_at at hour 24", "t", {}, { run_at: "2030-01-01T24:00:00Z" }, "INVALID_RUN_AT", false],
    ["run_at that is a number", "t", {}, { run_at: 1_900_000_000_000 }, "INVALID_RUN_AT", false],
    ["run_at null", "t", {}, { run_at: null }, "INVALID_RUN_AT", true],
    ["a negative delay", "t", {}, { delay_ms: -1 }, "INVALID_RUN_AT", true],
    ["a delay in a string", "t", {}, { delay_ms: "5" }, "INVALID_RUN_AT", true],
    ["a delay of null", "t", {}, { delay_ms: null }, "INVALID_RUN_AT", true],
    ["a delay past a Date's range", "t", {}, { delay_ms: 1e300 }, "INVALID_RUN_AT", false],
    ["a priority that is not whole", "t", {}, { priority: 1.5 }, "INVALID_PRIORITY", true],
    ["a priority past int32", "t", {}, { priority: 2_147_483_648 }, "INVALID_PRIORITY", true],
    ["a priority below int32", "t", {}, { priority: -2_147_483_648 }, "INVALID_PRIORITY", true],
    ["a priority in a string", "t", {}, { priority: "1" }, "INVALID_PRIORITY", true],
    ["max_attempts 0", "t", {}, { max_attempts: 0 }, "INVALID_MAX_ATTEMPTS", true],
    ["max_attempts not whole", "t", {}, { max_attempts: 2.5 }, "INVALID_MAX_ATTEMPTS", true],
    [
      "max_attempts past int32",
      "t",
      {},
      { max_attempts: 2_147_483_648 },
      "INVALID_MAX_ATTEMPTS",
      true,
    ],
    ["an empty unique_key", "t", {}, { unique_key: "" }, "INVALID_OPTION", true],
    ["a unique_key that is a number", "t", {}, { unique_key: 42 }, "INVALID_OPTION", true],
    [
      "a unique_key of 513 characters",
      "t",
      {},
      { unique_key: "k".repeat(513) },
      "INVALID_OPTION",
      true,
    ],
    // 257 characters outside the BMP: 514 UTF-16 code units, as JavaScript counts.
    [
      "a unique_key of 257 emoji",
      "t",
      {},
      { unique_key: "😀".repeat(257) },
      "INVALID_OPTION",
      true,
    ],
    ["an on_conflict of neither", "t", {}, { on_conflict: "merge" }, "INVALID_OPTION", true],
    ["a payload over 1 MiB", "t", { s: "x".repeat(LIMIT) }, {}, "PAYLOAD_TOO_LARGE", true],
  ];

  it.each(cases)("%s", async (_what, task, payload, options, code, compare) => {
    const before = await countJobs();
    const error = await refusedBySql(sqlEnqueue(task, payload, options), code);
    expect(error.message).toMatch(/\[[A-Z_]+\]$/);
    expect(await countJobs()).toBe(before);
    if (compare) {
      // The TypeScript enqueue refuses the same input with the same code.
      const tsOptions =
        typeof options === "object" && options !== null && !Array.isArray(options)
          ? camel(options)
          : options;
      const thrown = await t.rota.enqueue(task as string, payload, tsOptions as never).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isRotaError(thrown), String(thrown)).toBe(true);
      expect((thrown as { code: string }).code).toBe(code);
      expect(await countJobs()).toBe(before);
    }
  });

  it("a misspelt option is answered with the one meant", async () => {
    const error = await refusedBySql(sqlEnqueue("t", {}, { priorty: 1 }), "INVALID_OPTION");
    expect(error.message).toContain('did you mean "priority"?');
    const camelCase = await refusedBySql(sqlEnqueue("t", {}, { runAt: "x" }), "INVALID_OPTION");
    expect(camelCase.message).toContain('use "run_at"');
  });

  it("inside the caller's transaction, a refusal writes nothing of it either", async () => {
    const client = await app.connect();
    try {
      const before = await countJobs();
      await client.query("begin");
      await sqlEnqueue("t", {}, {}, client);
      await refusedBySql(sqlEnqueue("t", {}, { queue: "" }, client), "INVALID_QUEUE_NAME");
      await client.query("rollback");
      expect(await countJobs()).toBe(before);
    } finally {
      client.release();
    }
  });

  it("the payload limit counts the JSON text as JSON.stringify writes it, without jsonb's spaces", async () => {
    // {"s":"…","a":[0,0,…]} is exactly the limit as JSON.stringify writes it;
    // jsonb's own text is 100,002 bytes longer (a space after each ':' and ',').
    const zeros = Array.from({ length: 100_000 }, () => 0);
    const atLimit = { s: "x".repeat(LIMIT - 2 * zeros.length - 14), a: zeros };
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(LIMIT);
    const overLimit = { s: `${atLimit.s}x`, a: zeros };
    const id = await sqlEnqueue("limit.exact", atLimit, { queue: "limit" });
    expect((await t.rota.enqueue("limit.exact", atLimit, { queue: "limit" })).inserted).toBe(true);
    const error = await refusedBySql(sqlEnqueue("limit.exact", overLimit), "PAYLOAD_TOO_LARGE");
    expect(error.message).toContain(`is ${LIMIT + 1} bytes, over the ${LIMIT}-byte limit`);
    const thrown = await t.rota.enqueue("limit.exact", overLimit).then(
      () => null,
      (e: unknown) => e,
    );
    expect((thrown as Error).message).toContain(`is ${LIMIT + 1} bytes`);
    await app.query(`delete from "${t.schema}".jobs where queue = 'limit'`);
    expect(id).toMatch(/^\d+$/);
  });

  it("json_text_bytes is JSON.stringify's length in UTF-8 bytes", async () => {
    // Integers, strings (any Unicode but NUL and lone surrogates, which jsonb
    // cannot hold), booleans and null, nested: jsonb writes numbers as it
    // keeps them, which for whole numbers is as JavaScript writes them.
    const text = fc.string({ unit: "binary", maxLength: 12 }).filter((s) => !s.includes("\u0000"));
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.integer(),
        text,
        fc.boolean(),
        fc.constant(null),
        fc.array(tie("tree"), { maxLength: 5 }),
        fc.dictionary(text, tie("tree"), { maxKeys: 5 }),
      ),
    }));
    await fc.assert(
      fc.asyncProperty(tree, async (value) => {
        const result = await app.query(`select "${t.schema}".json_text_bytes($1::jsonb) as n`, [
          JSON.stringify(value),
        ]);
        expect(Number(result.rows[0].n)).toBe(Buffer.byteLength(JSON.stringify(value)));
      }),
      { numRuns: 200 },
    );
  });
});

describe("the job it enqueues", () => {
  it("is the row the TypeScript enqueue writes, with rota's defaults", async () => {
    const id = await sqlEnqueue("sql.defaults", { n: 1 });
    const ts = await t.rota.enqueue("sql.defaults", { n: 1 });
    const [fromSql, fromTs] = [await jobOf(id), await jobOf(ts.id)];
    const { id: _a, run_at: _b, created_at: _c, ...sqlRest } = fromSql;
    const { id: _d, run_at: _e, created_at: _f, ...tsRest } = fromTs;
    expect(sqlRest).toEqual(tsRest);
    expect(fromSql).toMatchObject({ queue: "default", state: "available", priority: 0 });
    expect(fromSql.max_attempts).toBe(25);
    // Due now, by rota's clock: run_at is the insert's clock reading.
    expect(fromSql.run_at.getTime()).toBe(fromSql.created_at.getTime());
    await app.query(`delete from "${t.schema}".jobs where task = 'sql.defaults'`);
  });

  it("is run by a rota worker, with its payload and options", async () => {
    const seen: unknown[] = [];
    await startWorker({
      queues: ["sql.run"],
      tasks: { "sql.greet": async (payload: unknown) => void seen.push(payload) },
    });
    const payload = { name: "Ada", tags: ["a", "b"], nested: { n: 1.5, ok: true, none: null } };
    const done = nextEvent(t.rota.events, "job:run:success", (e) => e.task === "sql.greet");
    const id = await sqlEnqueue("sql.greet", payload, {
      queue: "sql.run",
      priority: 7,
      max_attempts: 3,
    });
    expect((await done).id).toBe(id);
    expect(seen).toEqual([payload]);
  });

  it("with delay_ms or run_at waits in 'scheduled' until rota's clock reaches it", async () => {
    const ran: string[] = [];
    await startWorker({
      queues: ["sql.later"],
      pollIntervalMs: 200,
      tasks: { "sql.later": async (payload: { via: string }) => void ran.push(payload.via) },
    });
    const now = await t.rota.clock.now();
    const delayed = await sqlEnqueue(
      "sql.later",
      { via: "delay" },
      {
        queue: "sql.later",
        delay_ms: 3_600_000,
      },
    );
    const at = new Date(now.getTime() + 7_200_000);
    const planned = await sqlEnqueue(
      "sql.later",
      { via: "run_at" },
      {
        queue: "sql.later",
        run_at: at.toISOString(),
      },
    );
    const delayedRow = await jobOf(delayed);
    expect(delayedRow.state).toBe("scheduled");
    expect(delayedRow.run_at.getTime() - delayedRow.created_at.getTime()).toBe(3_600_000);
    const plannedRow = await jobOf(planned);
    expect(plannedRow.state).toBe("scheduled");
    expect(plannedRow.run_at.getTime()).toBe(at.getTime());

    const first = nextEvent(t.rota.events, "job:run:success", (e) => e.id === delayed);
    await t.rota.clock.shift(3_600_000 + 1_000);
    await first;
    expect(ran).toEqual(["delay"]);
    expect((await jobOf(planned)).state).toBe("scheduled");
    const second = nextEvent(t.rota.events, "job:run:success", (e) => e.id === planned);
    await t.rota.clock.shift(3_600_000);
    await second;
    expect(ran).toEqual(["delay", "run_at"]);
  });

  it("given only a task, or a run_at in the past, or a delay of 0, is due now", async () => {
    const bare = await sqlEnqueue("sql.now");
    expect(await jobOf(bare)).toMatchObject({ state: "available", payload: {}, queue: "default" });
    const past = await sqlEnqueue("sql.now", {}, { run_at: "2001-01-01T00:00:00+02:00" });
    const zero = await sqlEnqueue("sql.now", {}, { delay_ms: 0 });
    expect((await jobOf(past)).state).toBe("available");
    expect((await jobOf(past)).run_at.toISOString()).toBe("2000-12-31T22:00:00.000Z");
    expect((await jobOf(zero)).state).toBe("available");
    await app.query(`delete from "${t.schema}".jobs where task = 'sql.now'`);
  });

  it("goes into a paused queue, as a TypeScript enqueue does, and runs on resume", async () => {
    await t.rota.queues.pause("sql.paused");
    const id = await sqlEnqueue("sql.paused", {}, { queue: "sql.paused" });
    expect((await jobOf(id)).state).toBe("available");
    await startWorker({
      queues: ["sql.paused"],
      pollIntervalMs: 200,
      tasks: { "sql.paused": async () => {} },
    });
    const done = nextEvent(t.rota.events, "job:run:success", (e) => e.id === id);
    await t.rota.queues.resume("sql.paused");
    await done;
  });
});

describe("called from a trigger on the user's table", () => {
  let appSchema: string;
  beforeAll(async () => {
    appSchema = `${t.schema}_app`;
    await app.query(`
      create schema "${appSchema}";
      create table "${appSchema}".orders (id bigint generated always as identity primary key,
                                          email text not null);
      create function "${appSchema}".order_receipt() returns trigger language plpgsql as $$
      begin
        perform "${t.schema}".enqueue('email.receipt', jsonb_build_object('order', new.id),
                                      '{"queue": "receipts"}');
        return new;
      end
      $$;
      create trigger orders_receipt after insert on "${appSchema}".orders
        for each row execute function "${appSchema}".order_receipt();`);
  });
  afterAll(() => app.query(`drop schema if exists "${appSchema}" cascade`));

  const receiptsFor = async (order: string): Promise<number> =>
    Number(
      (
        await app.query(
          `select count(*) from "${t.schema}".jobs
           where task = 'email.receipt' and payload = jsonb_build_object('order', $1::bigint)`,
          [order],
        )
      ).rows[0].count,
    );

  async function placeOrder(client: pg.ClientBase | pg.Pool): Promise<string> {
    const result = await client.query(
      `insert into "${appSchema}".orders (email) values ('a@example.com') returning id::text`,
    );
    return result.rows[0].id;
  }

  it("a rolled-back transaction leaves no job", async () => {
    const client = await app.connect();
    try {
      await client.query("begin");
      const order = await placeOrder(client);
      await client.query("rollback");
      expect(await receiptsFor(order)).toBe(0);
    } finally {
      client.release();
    }
  });

  it("a committed one leaves its job, unseen before the commit, which a worker runs", async () => {
    const receipts: unknown[] = [];
    await startWorker({
      queues: ["receipts"],
      tasks: { "email.receipt": async (payload: unknown) => void receipts.push(payload) },
    });
    const client = await app.connect();
    let order: string;
    try {
      await client.query("begin");
      order = await placeOrder(client);
      expect(await receiptsFor(order)).toBe(0);
      await client.query("commit");
    } finally {
      client.release();
    }
    expect(await receiptsFor(order)).toBe(1);
    await expect.poll(() => receipts, { timeout: 15_000 }).toEqual([{ order: Number(order) }]);
  });

  it("bad input from the trigger refuses the user's insert with rota's code", async () => {
    await app.query(`
      create or replace function "${appSchema}".order_receipt() returns trigger language plpgsql as $$
      begin
        perform "${t.schema}".enqueue('email.receipt', jsonb_build_object('order', new.id),
                                      jsonb_build_object('queue', new.email));
        return new;
      end
      $$`);
    const orders = async () =>
      Number((await app.query(`select count(*) from "${appSchema}".orders`)).rows[0].count);
    // By the newest id, not a count: the previous test's job may still be
    // deleted by its worker's completion meanwhile.
    const newestJob = async () =>
      String(
        (await app.query(`select coalesce(max(id), 0) as id from "${t.schema}".jobs`)).rows[0].id,
      );
    const [ordersBefore, newestBefore] = [await orders(), await newestJob()];
    await refusedBySql(placeOrder(app), "INVALID_QUEUE_NAME");
    expect(await orders()).toBe(ordersBefore);
    const after = await newestJob();
    expect(BigInt(after)).toBeLessThanOrEqual(BigInt(newestBefore));
  });
});

describe("unique keys, as in TypeScript", () => {
  it("'keep' (the default) returns the queued job's id and writes nothing, whichever API came first", async () => {
    const ts = await t.rota.enqueue("uk", { v: 1 }, { uniqueKey: "uk:ts-first", delayMs: 60_000 });
    expect(await sqlEnqueue("uk", { v: 2 }, { unique_key: "uk:ts-first" })).toBe(ts.id);
    expect(await jobOf(ts.id)).toMatchObject({ payload: { v: 1 }, state: "scheduled" });

    const id = await sqlEnqueue("uk", { v: 1 }, { unique_key: "uk:sql-first", delay_ms: 60_000 });
    expect(
      await sqlEnqueue("uk", { v: 2 }, { unique_key: "uk:sql-first", on_conflict: "keep" }),
    ).toBe(id);
    const again = await t.rota.enqueue("uk", { v: 3 }, { uniqueKey: "uk:sql-first" });
    expect(again).toMatchObject({ id, inserted: false, replaced: false });
    expect(await jobOf(id)).toMatchObject({ payload: { v: 1 }, state: "scheduled" });
  });

  it("'replace' overwrites the queued job as the TypeScript enqueue does", async () => {
    const first = { queue: "uk.a", priority: 1, max_attempts: 2, delay_ms: 60_000 };
    const second = { queue: "uk.b", priority: 9, max_attempts: 4, on_conflict: "replace" };
    const sqlId = await sqlEnqueue("uk.r", { v: 1 }, { ...first, unique_key: "uk:r:sql" });
    const tsFirst = await t.rota.enqueue(
      "uk.r",
      { v: 1 },
      camel({ ...first, unique_key: "uk:r:ts" }),
    );
    expect(await sqlEnqueue("uk.r2", { v: 2 }, { ...second, unique_key: "uk:r:sql" })).toBe(sqlId);
    const tsSecond = await t.rota.enqueue(
      "uk.r2",
      { v: 2 },
      camel({ ...second, unique_key: "uk:r:ts" }),
    );
    expect(tsSecond).toMatchObject({ id: tsFirst.id, replaced: true });
    const [bySql, byTs] = [await jobOf(sqlId), await jobOf(tsFirst.id)];
    const same = ({ queue, task, payload, state, priority, max_attempts }: JobRecord) => ({
      queue,
      task,
      payload,
      state,
      priority,
      max_attempts,
    });
    expect(same(bySql)).toEqual(same(byTs));
    expect(same(bySql)).toEqual({
      queue: "uk.b",
      task: "uk.r2",
      payload: { v: 2 },
      state: "available",
      priority: 9,
      max_attempts: 4,
    });
  });

  it("once the job has started, the key is free: a new job", async () => {
    const id = await sqlEnqueue("uk.s", {}, { unique_key: "uk:started" });
    await app.query(`update "${t.schema}".jobs set state = 'running' where id = $1`, [id]);
    const next = await sqlEnqueue("uk.s", {}, { unique_key: "uk:started" });
    expect(next).not.toBe(id);
    const replaced = await sqlEnqueue(
      "uk.s",
      { v: 2 },
      { unique_key: "uk:started", on_conflict: "replace" },
    );
    expect(replaced).toBe(next);
  });

  it("a kept job that starts before its id is read frees the key: the insert is tried again", async () => {
    // A worker's claim landing between the insert that met the key and the
    // read of the job holding it, played by a statement trigger on jobs that
    // starts the key's job once, after that insert.
    const s = `"${t.schema}"`;
    const first = await sqlEnqueue("uk.gone", {}, { unique_key: "uk:gone" });
    await app.query(`
      create table ${s}.claim_once (key text);
      insert into ${s}.claim_once values ('uk:gone');
      create function ${s}.claim_once() returns trigger language plpgsql as $$
      begin
        update ${s}.jobs set state = 'running'
        where unique_key in (select key from ${s}.claim_once) and state = 'available';
        delete from ${s}.claim_once;
        return null;
      end
      $$;
      create trigger claim_once after insert on ${s}.jobs
        for each statement execute function ${s}.claim_once();`);
    try {
      const second = await sqlEnqueue("uk.gone", { v: 2 }, { unique_key: "uk:gone" });
      expect(second).not.toBe(first);
      expect((await jobOf(first)).state).toBe("running");
      expect(await jobOf(second)).toMatchObject({ state: "available", payload: { v: 2 } });
    } finally {
      await app.query(`drop trigger claim_once on ${s}.jobs;
                       drop function ${s}.claim_once(); drop table ${s}.claim_once;`);
    }
  });

  /** Resolves once backend `pid` waits for a lock (another transaction's row). */
  async function waitingForLock(pid: number): Promise<void> {
    await expect
      .poll(
        async () =>
          (await app.query("select wait_event_type from pg_stat_activity where pid = $1", [pid]))
            .rows[0]?.wait_event_type,
        { timeout: 10_000 },
      )
      .toBe("Lock");
  }

  /**
   * Two transactions enqueue `key` at once: `a` first, then `b`, which waits
   * for `a` to end (`aEnds`); both commit what they can. Returns both ids.
   */
  async function race(
    key: string,
    bOptions: Record<string, unknown>,
    aEnds: "commit" | "rollback",
  ): Promise<{ a: string; b: string }> {
    const a = await app.connect();
    const b = await app.connect();
    try {
      await a.query("begin");
      await b.query("begin");
      const aId = await sqlEnqueue("uk.race", { from: "a" }, { unique_key: key }, a);
      const bPid = (await b.query("select pg_backend_pid() as pid")).rows[0].pid;
      const bCall = sqlEnqueue("uk.race", { from: "b" }, { unique_key: key, ...bOptions }, b);
      await waitingForLock(bPid);
      await a.query(aEnds);
      const bId = await bCall;
      await b.query("commit");
      return { a: aId, b: bId };
    } finally {
      a.release();
      b.release();
    }
  }

  const jobsWithKey = async (key: string) =>
    (
      await app.query(
        `select id::text, payload from "${t.schema}".jobs where unique_key = $1 order by id`,
        [key],
      )
    ).rows;

  it("two transactions at once, 'keep': the second waits, then answers with the first one's job", async () => {
    const { a, b } = await race("uk:race:keep", {}, "commit");
    expect(b).toBe(a);
    expect(await jobsWithKey("uk:race:keep")).toEqual([{ id: a, payload: { from: "a" } }]);
  });

  it("two transactions at once, 'replace': the second overwrites the first one's job", async () => {
    const { a, b } = await race("uk:race:replace", { on_conflict: "replace" }, "commit");
    expect(b).toBe(a);
    expect(await jobsWithKey("uk:race:replace")).toEqual([{ id: a, payload: { from: "b" } }]);
  });

  it("two transactions at once, the first rolled back: the second inserts its own", async () => {
    const { a, b } = await race("uk:race:rollback", {}, "rollback");
    expect(b).not.toBe(a);
    expect(await jobsWithKey("uk:race:rollback")).toEqual([{ id: b, payload: { from: "b" } }]);
  });

  it("twenty callers at once with one key: one job, and every caller is given its id", async () => {
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        sqlEnqueue(
          "uk.many",
          { i },
          { unique_key: "uk:many", on_conflict: i % 2 ? "replace" : "keep" },
        ),
      ),
    );
    const rows = await jobsWithKey("uk:many");
    expect(rows).toHaveLength(1);
    expect(new Set(ids)).toEqual(new Set([rows[0].id]));
  });
});

describe("waking the workers", () => {
  /**
   * A worker of `queue` (and its task of the same name) whose next poll is a
   * minute away, once it is idle: the job must start from the NOTIFY. `ran`
   * resolves with the id of the next job it runs (wrapped, so that awaiting
   * the worker does not await the run).
   */
  async function idleWorker(queue: string): Promise<{ ran: Promise<string> }> {
    const worker = await startWorker({
      queues: [queue],
      pollIntervalMs: 60_000,
      tasks: { [queue]: async () => {} },
    });
    await expect.poll(() => worker.idle, { timeout: 10_000 }).toBe(true);
    const event = nextEvent(t.rota.events, "job:run:success", (e) => e.task === queue, 10_000);
    return { ran: event.then((e) => e.id) };
  }

  it("a listening worker runs the job at once, without waiting for its poll", async () => {
    const { ran } = await idleWorker("sql.wake");
    const id = await sqlEnqueue("sql.wake", {}, { queue: "sql.wake" });
    expect(await ran).toBe(id);
  });

  it("inside a transaction, the wake-up comes with the commit", async () => {
    const { ran } = await idleWorker("sql.wake.tx");
    const client = await app.connect();
    let id: string;
    try {
      await client.query("begin");
      id = await sqlEnqueue("sql.wake.tx", {}, { queue: "sql.wake.tx" }, client);
      await client.query("commit");
    } finally {
      client.release();
    }
    expect(await ran).toBe(id);
  });

  it("sends one NOTIFY naming the queue, and none for a kept duplicate", async () => {
    const listener = new pg.Client(t.url);
    await listener.connect();
    try {
      const seen: string[] = [];
      listener.on("notification", (n) => seen.push(n.payload ?? ""));
      await listener.query(`listen "${channelName(t.schema, "jobs")}"`);
      await sqlEnqueue(
        "sql.notify",
        {},
        { queue: "sql.notify", unique_key: "notify:1", delay_ms: 60_000 },
      );
      await sqlEnqueue("sql.notify", {}, { queue: "sql.notify", unique_key: "notify:1" });
      await listener.query("select 1");
      expect(seen).toEqual(["sql.notify"]);
    } finally {
      await listener.end();
    }
  });
});
