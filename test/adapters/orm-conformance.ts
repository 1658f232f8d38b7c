// One suite run against every ORM adapter (rota/kysely, rota/drizzle,
// rota/knex, rota/prisma), each from its own test file: the job exists if
// and only if the ORM's transaction commits, and what rota returns through
// the adapter is what it returns through a pg client.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Executor } from "../../src/db/database.js";
import {
  inTransaction,
  migratedSchemaWithClient,
  type TestSchemaWithClient,
} from "../helpers/database.js";

/** One ORM, opened on the test's schema. */
export interface OrmHarness {
  /**
   * Runs `fn` in the ORM's own transaction: committed when `fn` returns,
   * rolled back (by the ORM) when it throws. `client` is rota's executor
   * over that transaction; `insertOrder` writes a row of the application's
   * own table through the ORM's query builder, in the same transaction.
   */
  transaction<T>(fn: (tx: OrmTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OrmTransaction {
  client: Executor;
  insertOrder(note: string): Promise<void>;
}

export interface OrmSetup {
  url: string;
  /** The test's schema: rota's tables, and `orders` (id serial, note text), the application's. */
  schema: string;
}

/** Thrown inside a transaction to roll it back. */
class Rollback extends Error {}

/**
 * Columns of the probe statement beyond the common ones: types an ORM's
 * driver returns differently from pg (Drizzle's dates and intervals), which
 * not every ORM can read (Prisma refuses interval).
 */
export interface ConformanceOptions {
  probeColumns?: string[];
}

export function ormConformance(
  orm: string,
  open: (setup: OrmSetup) => Promise<OrmHarness>,
  options: ConformanceOptions = {},
): { schema: () => TestSchemaWithClient } {
  let t: TestSchemaWithClient;
  let h: OrmHarness;
  let pool: pg.Pool;

  beforeAll(async () => {
    t = await migratedSchemaWithClient();
    await t.app.query(
      `create table ${pg.escapeIdentifier(t.schema)}.orders (id serial primary key, note text not null)`,
    );
    pool = new pg.Pool({ connectionString: t.url, max: 2 });
    h = await open({ url: t.url, schema: t.schema });
  });
  afterAll(async () => {
    await h?.close();
    await pool?.end();
    await t?.drop();
  });

  const orders = async (note: string) =>
    Number(
      (
        await t.app.query(
          `select count(*) from ${pg.escapeIdentifier(t.schema)}.orders where note = $1`,
          [note],
        )
      ).rows[0].count,
    );
  const jobCount = async (ids: string[]) =>
    Number(
      (
        await t.app.query(
          `select count(*) from ${pg.escapeIdentifier(t.schema)}.jobs where id = any($1::bigint[])`,
          [ids],
        )
      ).rows[0].count,
    );
  /** What a pg client inside a transaction gets for `fn`, committed. */
  const viaPg = <T>(fn: (client: Executor) => Promise<T>) => inTransaction(pool, fn, true);

  describe(`${orm}: enqueue inside the ORM's transaction`, () => {
    it("commits with the application's own row, unseen by other connections until then", async () => {
      let seenBeforeCommit = -1;
      const job = await h.transaction(async (tx) => {
        await tx.insertOrder("committed");
        const enqueued = await t.rota.enqueue(
          "orm.receipt",
          { order: "committed" },
          { client: tx.client },
        );
        seenBeforeCommit = await jobCount([enqueued.id]);
        return enqueued;
      });
      expect(seenBeforeCommit).toBe(0);
      expect(await orders("committed")).toBe(1);
      expect(await jobCount([job.id])).toBe(1);
      expect((await t.rota.getJob(job.id))?.payload).toEqual({ order: "committed" });
    });

    it("rolls back with it when the callback throws: neither exists", async () => {
      let id = "";
      await expect(
        h.transaction(async (tx) => {
          await tx.insertOrder("rolled-back");
          id = (
            await t.rota.enqueue("orm.receipt", { order: "rolled-back" }, { client: tx.client })
          ).id;
          throw new Rollback("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      expect(id).not.toBe("");
      expect(await orders("rolled-back")).toBe(0);
      expect(await jobCount([id])).toBe(0);
    });

    it("enqueueMany of 600 jobs (a multi-row insert: COPY needs a pg client) is all or nothing", async () => {
      const jobs = Array.from({ length: 600 }, (_, i) => ({
        task: "orm.bulk",
        payload: { i },
        options: { queue: "bulk", delayMs: i % 2 === 0 ? 0 : 60_000 },
      }));
      let rolledBack: string[] = [];
      await expect(
        h.transaction(async (tx) => {
          rolledBack = (await t.rota.enqueueMany(jobs, { client: tx.client })).map((r) => r.id);
          throw new Rollback("not these");
        }),
      ).rejects.toThrow("not these");
      expect(rolledBack).toHaveLength(600);
      expect(await jobCount(rolledBack)).toBe(0);

      const committed = await h.transaction((tx) =>
        t.rota.enqueueMany(jobs, { client: tx.client }),
      );
      expect(committed).toHaveLength(600);
      expect(await jobCount(committed.map((r) => r.id))).toBe(600);
      expect(committed.slice(0, 2).map((r) => r.state)).toEqual(["available", "scheduled"]);
      const first = await t.rota.getJob(committed[0]?.id as string);
      const last = await t.rota.getJob(committed[599]?.id as string);
      expect([first?.payload, last?.payload]).toEqual([{ i: 0 }, { i: 599 }]);
    });

    it("takes a payload holding ? and $1 as text, never as placeholders", async () => {
      const payload = {
        q: "what? $1 ?| ?& $2::int \\? ??",
        "?": "$1",
        nested: ["?", "$$", "$1$2", "'?'"],
      };
      const { id } = await h.transaction((tx) =>
        t.rota.enqueue("orm.marks", payload, { client: tx.client, uniqueKey: "marks?$1" }),
      );
      expect((await t.rota.getJob(id))?.payload).toEqual(payload);
      const stored = await t.app.query(
        `select unique_key from ${pg.escapeIdentifier(t.schema)}.jobs where id = $1`,
        [id],
      );
      expect(stored.rows[0].unique_key).toBe("marks?$1");
    });
  });

  describe(`${orm}: the other calls that take client`, () => {
    it("batches.enqueue: the batch and its members exist if and only if the transaction commits", async () => {
      const members = [1, 2, 3].map((n) => ({ task: "orm.member", payload: { n } }));
      const onComplete = { task: "orm.done", payload: { day: "monday" } };
      let rolledBack = "";
      await expect(
        h.transaction(async (tx) => {
          rolledBack = (await t.rota.batches.enqueue(members, { client: tx.client, onComplete }))
            .id;
          throw new Rollback("no batch");
        }),
      ).rejects.toThrow("no batch");
      expect(await t.rota.batches.get(rolledBack)).toBeNull();

      const batch = await h.transaction((tx) =>
        t.rota.batches.enqueue(members, { client: tx.client, onComplete, expiresInMs: 3_600_000 }),
      );
      expect(await jobCount(batch.jobs.map((j) => j.id))).toBe(3);
      expect((await t.rota.batches.get(batch.id))?.total).toBe(3);
      const reference = await viaPg((client) =>
        t.rota.batches.enqueue(members, { client, onComplete, expiresInMs: 3_600_000 }),
      );
      expect(shape(batch)).toEqual(shape(reference));
      expect(batch.createdAt).toBeInstanceOf(Date);
      expect(batch.expiresAt).toBeInstanceOf(Date);
    });

    it("cancel (an admin call) returns what it returns through pg, and rolls back with the transaction", async () => {
      const [a, b] = await t.rota.enqueueMany([
        { task: "orm.cancel", payload: {} },
        { task: "orm.cancel", payload: {} },
      ]);
      await expect(
        h.transaction(async (tx) => {
          await t.rota.cancel(a?.id as string, { client: tx.client });
          throw new Rollback("keep it");
        }),
      ).rejects.toThrow("keep it");
      expect((await t.rota.getJob(a?.id as string))?.state).toBe("available");

      const cancelled = await h.transaction((tx) =>
        t.rota.cancel(a?.id as string, { client: tx.client }),
      );
      const reference = await viaPg((client) => t.rota.cancel(b?.id as string, { client }));
      expect(cancelled).toEqual({ ...reference, id: a?.id });
      expect(cancelled).toEqual({ id: a?.id, state: "cancelled", previousState: "available" });
    });

    it("capture.add and capture.remove install and drop their trigger in the transaction", async () => {
      const table = `${t.schema}.orders`;
      const input = { table, on: ["insert" as const], task: "orm.captured", queue: "captured" };
      await expect(
        h.transaction(async (tx) => {
          await t.rota.capture.add({ ...input, name: "orm_orders" }, { client: tx.client });
          throw new Rollback("no trigger");
        }),
      ).rejects.toThrow("no trigger");
      expect(await t.rota.capture.get("orm_orders")).toBeNull();

      const added = await h.transaction((tx) =>
        t.rota.capture.add({ ...input, name: "orm_orders" }, { client: tx.client }),
      );
      const reference = await viaPg((client) =>
        t.rota.capture.add({ ...input, name: "pg_orders" }, { client }),
      );
      expect(added.status).toBe("ok");
      expect(added.createdAt).toBeInstanceOf(Date);
      expect(shape(added)).toEqual(shape(reference));

      const removed = await h.transaction((tx) =>
        t.rota.capture.remove("orm_orders", { client: tx.client }),
      );
      await viaPg((client) => t.rota.capture.remove("pg_orders", { client }));
      expect(removed).toEqual({
        name: "orm_orders",
        droppedTriggers: [`${t.schema}.orders.rota_capture_orm_orders_insert`],
      });
      expect(await t.rota.capture.get("orm_orders")).toBeNull();
    });
  });

  describe(`${orm}: values`, () => {
    it("enqueue returns what it returns through a pg client", async () => {
      const options = { uniqueKey: "same-shape", runAt: new Date(Date.now() + 60_000) };
      const viaOrm = await h.transaction((tx) =>
        t.rota.enqueue("orm.shape", { n: 1 }, { client: tx.client, ...options }),
      );
      const again = await h.transaction((tx) =>
        t.rota.enqueue(
          "orm.shape",
          { n: 2 },
          { client: tx.client, ...options, onConflict: "replace" },
        ),
      );
      const reference = await viaPg((client) =>
        t.rota.enqueue("orm.shape", { n: 3 }, { client, ...options, onConflict: "replace" }),
      );
      expect(viaOrm).toEqual({
        id: expect.stringMatching(/^\d+$/),
        state: "scheduled",
        inserted: true,
        replaced: false,
      });
      expect(again).toEqual(reference);
      expect(again).toEqual({ id: viaOrm.id, state: "scheduled", inserted: false, replaced: true });
    });

    it("a statement's row through the adapter equals pg's: int8 as text, Dates, jsonb parsed, arrays", async () => {
      const text = [
        "select 9007199254740993::int8 as big, 7::int4 as small, 'x'::text as t, true as b,",
        "null::text as nothing, '2026-03-01 12:34:56.789+00'::timestamptz as at,",
        `'{"a": [1, "?"], "b": null}'::jsonb as j, '"s"'::jsonb as js, array['a', 'b']::text[] as texts,`,
        "array[1, 9007199254740993]::int8[] as bigs, count(*) as counted,",
        "$1::text as p_text, $2::int as p_int, $3::jsonb as p_json, $4::text[] as p_texts,",
        "$1 || '!' as p_again, $5::timestamptz as p_at, $6::bool as p_bool, $7::bigint as p_big,",
        // Text that a driver might take for its own placeholders: jsonb's
        // ? operators, a ? in a literal, a $1 in a literal and a comment.
        "$3::jsonb ? 'k' as has_k, $3::jsonb ?| array['x', 'k'] as any_of,",
        "$3::jsonb ?& array['x', 'k'] as all_of, $3::jsonb ?$1 as tight, '? $1 ??' as marks",
        ...(options.probeColumns ?? []).map((column) => `, ${column}`),
        "-- a comment with ? and $1",
      ].join("\n");
      const values = [
        "it's $1?",
        42,
        JSON.stringify({ k: "?", "it's $1?": true }),
        ["?", "$1"],
        new Date("2026-05-06T07:08:09.123Z"),
        false,
        "9007199254740993",
      ];
      const viaOrm = await h.transaction((tx) => tx.client.query({ text, values }));
      const viaPgClient = await t.app.query({ text, values });
      expect(viaOrm.rows).toEqual(viaPgClient.rows);
      expect(viaOrm.rows[0]).toMatchObject({
        big: "9007199254740993",
        at: new Date("2026-03-01T12:34:56.789Z"),
        j: { a: [1, "?"], b: null },
        bigs: ["1", "9007199254740993"],
        tight: true,
        marks: "? $1 ??",
      });
    });
  });

  return { schema: () => t };
}

/** Each leaf's kind (Date, string, number, boolean, null), for comparing two results' types. */
export function shape(value: unknown): unknown {
  if (value === null || value === undefined) return String(value);
  if (value instanceof Date) return "Date";
  if (Array.isArray(value)) return value.map(shape);
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]));
  }
  return typeof value;
}
