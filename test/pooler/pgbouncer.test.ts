// rota through PgBouncer in transaction pooling mode: each transaction (each
// statement outside one) may run on another server connection, so nothing
// rota relies on may live in a session. The test starts its own pgbouncer
// (test/helpers/pgbouncer.ts) in front of the suite's PostgreSQL, with few
// server connections so that consecutive statements do change connection.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { isRotaError } from "../../src/errors.js";
import { silentLogger } from "../../src/logger.js";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema, uniqueSchema, withClient } from "../helpers/database.js";
import { findPgBouncer, type PgBouncer, startPgBouncer } from "../helpers/pgbouncer.js";

const binary = findPgBouncer();
if (binary === null) {
  if (process.env.ROTA_REQUIRE_PGBOUNCER === "1") {
    throw new Error(
      "pgbouncer is not installed and ROTA_REQUIRE_PGBOUNCER=1: install it (apt-get install pgbouncer).",
    );
  }
  process.stderr.write(
    "SKIPPED test/pooler/pgbouncer.test.ts: pgbouncer is not installed (apt-get install pgbouncer); CI installs it and sets ROTA_REQUIRE_PGBOUNCER=1.\n",
  );
}

let t: TestSchema;
let bouncer: PgBouncer;
/** A Rota through PgBouncer, LISTEN straight to PostgreSQL. */
let rota: Rota;
beforeAll(async () => {
  if (binary === null) return;
  t = await migratedSchema();
  bouncer = await startPgBouncer(binary, t.url);
  rota = new Rota({
    connection: bouncer.url(t.url),
    schema: t.schema,
    transactionPooler: true,
    listenConnection: t.url,
    retention: { succeededMs: 3_600_000 },
  });
});
afterAll(async () => {
  await rota?.close();
  await bouncer?.stop();
  await t?.drop();
});

describe.skipIf(binary === null)("through PgBouncer in transaction mode", () => {
  it("is a PgBouncer without protocol-level prepared statements (before 1.21, or with them off)", () => {
    // Debian bookworm ships 1.18; the helper turns them off on 1.21 and later.
    expect(bouncer.version).toMatch(/^\d+\.\d+/);
  });

  it("without transactionPooler, rota cannot even connect: PgBouncer refuses the session settings it sends", async () => {
    const plain = new Rota({ connection: bouncer.url(t.url), schema: t.schema });
    try {
      const error = await plain.schemaStatus().catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/unsupported startup parameter: options/);
    } finally {
      await plain.close();
    }
  });

  it("named prepared statements break through it: why transactionPooler sends them unnamed", async () => {
    // A pool of the caller's, without rota's session settings, so only the
    // statement names are in the way.
    const pool = new pg.Pool({ connectionString: bouncer.url(t.url), max: 8 });
    const named = new Rota({ connection: pool, schema: t.schema });
    const unnamed = new Rota({ connection: pool, schema: t.schema, transactionPooler: true });
    try {
      const { id } = await t.rota.enqueue("named", {});
      const burst = (r: Rota) => Promise.allSettled(Array.from({ length: 40 }, () => r.getJob(id)));
      const failures: string[] = [];
      for (let round = 0; round < 5 && failures.length === 0; round++) {
        for (const outcome of await burst(named)) {
          if (outcome.status === "rejected") failures.push((outcome.reason as Error).message);
        }
      }
      expect(failures.length).toBeGreaterThan(0);
      expect(failures[0]).toMatch(/prepared statement .* (does not exist|already exists)/);
      for (let round = 0; round < 5; round++) {
        for (const outcome of await burst(unnamed)) expect(outcome.status).toBe("fulfilled");
      }
    } finally {
      await pool.end();
    }
  });

  it("the CLI takes --transaction-pooler (and --listen-url for workers)", async () => {
    const args = ["doctor", "--json", "--schema", t.schema, "--database-url", bouncer.url(t.url)];
    const refused = await runCli(args);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).problems[0].message).toMatch(/unsupported startup parameter/);
    const pooled = await runCli([...args, "--transaction-pooler", "--listen-url", t.url]);
    expect(pooled.code).toBe(0);
    expect(JSON.parse(pooled.stdout)).toMatchObject({ ok: true, reachable: true });
  });

  it("migrates a schema", async () => {
    const schema = uniqueSchema("bouncer");
    const fresh = new Rota({ connection: bouncer.url(t.url), schema, transactionPooler: true });
    try {
      expect((await fresh.migrate()).length).toBeGreaterThan(0);
      expect((await fresh.schemaStatus()).pending).toEqual([]);
      expect((await fresh.diagnose()).ok).toBe(true);
    } finally {
      await fresh.close();
      await withClient((c) => c.query(`drop schema "${schema}" cascade`));
    }
  });

  it("enqueues one job, a list by INSERT, a list of 600 by COPY, and inside a caller's transaction", async () => {
    const one = await rota.enqueue("bounced", { n: 0 }, { queue: "enqueue-only" });
    const inserted = await rota.enqueueMany(
      Array.from({ length: 100 }, (_, n) => ({
        task: "bounced",
        payload: { n },
        options: { queue: "enqueue-only" },
      })),
    );
    const copied = await rota.enqueueMany(
      Array.from({ length: 600 }, (_, n) => ({
        task: "bounced",
        payload: { n },
        options: { queue: "enqueue-only", delayMs: n % 2 === 0 ? 0 : 60_000 },
      })),
    );
    expect(copied.filter((j) => j.state === "scheduled")).toHaveLength(300);
    // The caller's transaction on a client of its own pool through PgBouncer:
    // pinned to one server connection until it ends, rolled back here.
    const pool = new pg.Pool({ connectionString: bouncer.url(t.url), max: 2 });
    try {
      const client = await pool.connect();
      try {
        await client.query("begin");
        const rolledBack = await rota.enqueue(
          "bounced",
          { n: -1 },
          { client, queue: "enqueue-only" },
        );
        const copiedInside = await rota.enqueueMany(
          Array.from({ length: 600 }, (_, n) => ({
            task: "bounced",
            payload: { n },
            options: { queue: "enqueue-only" },
          })),
          { client },
        );
        await client.query("rollback");
        expect(await t.rota.getJob(rolledBack.id)).toBeNull();
        expect(await t.rota.getJob(copiedInside[0]?.id as string)).toBeNull();
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
    const stored = await withClient(
      async (c) =>
        (
          await c.query(
            `select count(*)::int as n, count(distinct id)::int as ids from "${t.schema}".jobs where queue = 'enqueue-only'`,
          )
        ).rows[0],
    );
    expect(stored).toEqual({ n: 701, ids: 701 });
    expect((await t.rota.getJob(one.id))?.payload).toEqual({ n: 0 });
    expect(inserted).toHaveLength(100);
  });

  it("a worker runs every job once, woken through its direct LISTEN connection", async () => {
    const ran = new Map<string, number>();
    const worker = rota.worker({
      logger: silentLogger,
      queues: ["through-bouncer"],
      concurrency: 8,
      tasks: {
        bounced: async (_payload: unknown, ctx) => {
          ran.set(ctx.job.id, (ran.get(ctx.job.id) ?? 0) + 1);
        },
      },
    });
    await worker.start();
    try {
      await expect.poll(() => worker.health().listening).toBe(true);
      const jobs = await rota.enqueueMany(
        Array.from({ length: 700 }, (_, n) => ({
          task: "bounced",
          payload: { n },
          options: { queue: "through-bouncer" },
        })),
      );
      await expect.poll(() => ran.size, { timeout: 30_000 }).toBe(700);
      expect([...ran.values()].every((runs) => runs === 1)).toBe(true);
      await expect
        .poll(async () => (await t.rota.getJob(jobs[699]?.id as string))?.state)
        .toBe("succeeded");
      // A lone enqueue names its job in the NOTIFY: the idle worker takes it by id.
      await expect.poll(() => worker.idle).toBe(true);
      const byId = worker.claimedById;
      await rota.enqueue("bounced", {}, { queue: "through-bouncer" });
      await expect.poll(() => worker.claimedById).toBeGreaterThan(byId);
      expect(worker.health()).toMatchObject({ ok: true, databaseReachable: true });
    } finally {
      await worker.stop();
    }
  });

  it("a concurrency key's limit holds: its lock is the claim transaction's own", async () => {
    let running = 0;
    let most = 0;
    const worker = rota.worker({
      logger: silentLogger,
      queues: ["keyed"],
      concurrency: 5,
      tasks: {
        keyed: async () => {
          most = Math.max(most, ++running);
          // Long enough that a second job of the key would overlap it.
          await new Promise((resolve) => setTimeout(resolve, 20));
          running--;
        },
      },
    });
    await worker.start();
    try {
      const jobs = await rota.enqueueMany(
        Array.from({ length: 20 }, (_, n) => ({
          task: "keyed",
          payload: { n },
          options: { queue: "keyed", concurrencyKey: "tenant:1", concurrencyLimit: 1 },
        })),
      );
      await expect
        .poll(
          async () =>
            (await Promise.all(jobs.map((j) => t.rota.getJob(j.id)))).filter(
              (j) => j?.state === "succeeded",
            ).length,
          { timeout: 20_000 },
        )
        .toBe(20);
      expect(most).toBe(1);
    } finally {
      await worker.stop();
    }
  });

  it("a worker without a listenConnection is refused, unless it polls (listen: false)", async () => {
    const noListen = new Rota({
      connection: bouncer.url(t.url),
      schema: t.schema,
      transactionPooler: true,
    });
    try {
      let refused: unknown;
      try {
        noListen.worker({ tasks: { bounced: async () => {} } });
      } catch (error) {
        refused = error;
      }
      expect(isRotaError(refused, "INVALID_OPTION")).toBe(true);
      expect((refused as Error).message).toMatch(/listenConnection/);

      let ran = 0;
      const polling = noListen.worker({
        logger: silentLogger,
        listen: false,
        pollIntervalMs: 100,
        queues: ["polled"],
        tasks: { bounced: async () => void ran++ },
      });
      await polling.start();
      try {
        await noListen.enqueueMany(
          Array.from({ length: 20 }, () => ({ task: "bounced", options: { queue: "polled" } })),
        );
        await expect.poll(() => ran, { timeout: 10_000 }).toBe(20);
        expect(polling.health().listening).toBeNull();
      } finally {
        await polling.stop();
      }
    } finally {
      await noListen.close();
    }
  });

  it("the orchestrator leads and a schedule fires once", async () => {
    const fired: Date[] = [];
    const worker = rota.worker({
      logger: silentLogger,
      queues: ["bounced-schedule"],
      tasks: { hourly: async (_payload: unknown, ctx) => void fired.push(ctx.job.runAt) },
    });
    const orchestrator = rota.orchestrator({ holder: "through-bouncer" });
    await worker.start();
    try {
      await rota.schedules.upsert({
        name: "through-bouncer",
        task: "hourly",
        queue: "bounced-schedule",
        cron: "0 * * * *",
      });
      // The upsert planned the next run; the leader keeps the horizon filled.
      expect(await orchestrator.tick()).toMatchObject({
        leader: true,
        errors: [],
        databaseUnreachable: false,
      });
      expect(await rota.schedules.upcoming("through-bouncer", { limit: 1 })).toHaveLength(1);
      // The next hour comes by the database clock; the worker hears of it
      // (the shift wakes the queues) and runs it.
      await t.rota.clock.shift(60 * 60_000);
      expect((await orchestrator.tick()).errors).toEqual([]);
      await expect.poll(() => fired.length, { timeout: 10_000 }).toBe(1);
      expect((await orchestrator.tick()).errors).toEqual([]);
      const history = await rota.schedules.history("through-bouncer", { states: ["succeeded"] });
      expect(history).toHaveLength(1);
      expect(fired).toHaveLength(1);
    } finally {
      await orchestrator.stop();
      await worker.stop();
      await t.rota.clock.reset();
    }
  });
});
