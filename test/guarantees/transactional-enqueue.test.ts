// Guarantee 3: given the caller's client, the job exists if and only if the
// caller's transaction commits.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  inTransaction as inTransactionOf,
  migratedSchema,
  type TestSchema,
} from "../helpers/database.js";

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

function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>, commit: boolean) {
  return inTransactionOf(pool, fn, commit);
}

describe("guarantee 3: transactional enqueue", () => {
  it("a job enqueued in a rolled-back transaction never exists", async () => {
    const { id } = await inTransaction(
      (client) => t.rota.enqueue("tx.job", { n: 1 }, { client }),
      false,
    );
    expect(await t.rota.getJob(id)).toBeNull();
  });

  it("a job enqueued in a committed transaction exists, and is invisible before the commit", async () => {
    const client = await pool.connect();
    try {
      await client.query("begin");
      const { id } = await t.rota.enqueue("tx.job", { n: 2 }, { client });
      const many = await t.rota.enqueueMany(
        [
          { task: "tx.many", payload: {} },
          { task: "tx.many", payload: {} },
        ],
        {
          client,
        },
      );
      // Outside the transaction nothing is visible yet.
      expect(await t.rota.getJob(id)).toBeNull();
      await client.query("commit");
      expect((await t.rota.getJob(id))?.payload).toEqual({ n: 2 });
      for (const job of many) expect(await t.rota.getJob(job.id)).not.toBeNull();
    } finally {
      client.release();
    }
  });

  it("a statement failing half-way through the caller's transaction takes the enqueued jobs with it", async () => {
    let id = "";
    await expect(
      inTransaction(async (client) => {
        id = (await t.rota.enqueue("tx.job", { n: 3 }, { client })).id;
        await client.query("select 1 / 0");
      }, true),
    ).rejects.toThrow(/division by zero/);
    expect(id).not.toBe("");
    expect(await t.rota.getJob(id)).toBeNull();
  });

  it("a worker never sees a job before its transaction commits", async () => {
    const seen: string[] = [];
    const worker = t.rota.worker({
      queues: ["txq"],
      tasks: { "tx.run": async (_p, ctx) => void seen.push(ctx.job.id) },
    });
    await worker.start();
    try {
      const client = await pool.connect();
      let id: string;
      try {
        await client.query("begin");
        id = (await t.rota.enqueue("tx.run", {}, { queue: "txq", client })).id;
        worker.wake();
        await new Promise((r) => setTimeout(r, 200));
        expect(seen).toEqual([]);
        await client.query("commit");
      } finally {
        client.release();
      }
      // The NOTIFY is delivered on commit and wakes the worker.
      await expect.poll(() => seen).toEqual([id]);
    } finally {
      await worker.stop();
    }
  });
});
