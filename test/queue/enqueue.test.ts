import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Rota } from "../../src/client.js";
import { isRotaError } from "../../src/errors.js";
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

  it("enqueueMany inserts the whole list in one statement and keeps the order", async () => {
    const specs = Array.from({ length: 1000 }, (_, i) => ({ task: "bulk", payload: { i } }));
    let statements = 0;
    const original = t.rota.db.pool.query.bind(t.rota.db.pool);
    // Count statements sent through rota's pool during the call.
    (t.rota.db.pool as unknown as { query: unknown }).query = (...args: unknown[]) => {
      statements++;
      return (original as (...a: unknown[]) => unknown)(...args);
    };
    let results: Awaited<ReturnType<Rota["enqueueMany"]>>;
    try {
      results = await t.rota.enqueueMany(specs);
    } finally {
      (t.rota.db.pool as unknown as { query: unknown }).query = original;
    }
    expect(statements).toBe(1);
    expect(results).toHaveLength(1000);
    const first = await t.rota.getJob(results[0]?.id as string);
    const last = await t.rota.getJob(results[999]?.id as string);
    expect(first?.payload).toEqual({ i: 0 });
    expect(last?.payload).toEqual({ i: 999 });
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
