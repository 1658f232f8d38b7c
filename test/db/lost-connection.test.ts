// A connection rota holds between two statements (a transaction's, or an
// enqueue's insert and the wake-up sent after it) can be ended by the server
// at that moment: a restart, an administrator's pg_terminate_backend, a
// failover proxy. node-postgres then emits "error" on the client, and with
// no listener that was an uncaught exception: the process ended (found by
// the chaos run, npm run chaos, on its own enqueues). Now the next statement
// on that client fails, as a lost connection should, and the pool replaces it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("a connection lost while rota holds it", () => {
  it("ends in the next statement's error, not the process; the pool goes on", async () => {
    const client = await t.db.connect();
    const pid = (await client.query("select pg_backend_pid() as pid")).rows[0].pid as number;
    // Only this connection of this test's own pool.
    await withClient((c) => c.query("select pg_terminate_backend($1)", [pid]));
    // The server's notice arrives on the idle connection: the client is no
    // longer queryable once it has been read.
    await expect
      .poll(
        () =>
          client.query("select 1").then(
            () => "queried",
            () => "refused",
          ),
        { timeout: 10_000, interval: 50 },
      )
      .toBe("refused");
    client.release(new Error("terminated"));
    // rota's next statements take another connection.
    const job = await t.rota.enqueue("after-the-loss", {});
    expect((await t.rota.getJob(job.id))?.state).toBe("available");
  });
});
