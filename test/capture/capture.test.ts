// Change capture (docs/capture.md): a change to a captured table, made by
// any client, becomes a job in the change's own transaction, one queued job
// per row key; workers run it (woken by NOTIFY, or found by the poll); a
// paused queue holds the jobs, coalesced, until it is resumed; remove leaves
// no trigger behind; bad input writes nothing.
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CaptureInfo } from "../../src/capture/captures.js";
import { isRotaError } from "../../src/errors.js";
import { silentLogger } from "../../src/logger.js";
import type { Worker } from "../../src/worker/worker.js";
import { migratedSchemaWithClient, type TestSchemaWithClient } from "../helpers/database.js";

/** t.app: a plain pg client, the "other application" that writes the tables behind rota's back. */
let t: TestSchemaWithClient;
beforeAll(async () => {
  t = await migratedSchemaWithClient();
});
afterAll(() => t.drop());

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

interface Captured {
  capture: string;
  op: "insert" | "update" | "delete";
  key: Record<string, unknown>;
  row: Record<string, unknown>;
}

/** A worker for `queue` that records each captured payload it runs. */
async function startWorker(queue: string, options: { listen?: boolean } = {}) {
  const seen: Captured[] = [];
  const worker = t.rota.worker({
    queues: [queue],
    logger: silentLogger,
    pollIntervalMs: 100,
    fallbackPollMs: 100,
    rescueIntervalMs: 0,
    ...options,
    tasks: { [`sync-${queue}`]: (payload: Captured) => void seen.push(payload) },
  });
  workers.push(worker);
  await worker.start();
  return { worker, seen };
}

/** A fresh table in the test's schema: id primary key, name, description, visibility. */
async function createTable(name: string): Promise<string> {
  const table = `${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(name)}`;
  await t.app.query(
    `create table ${table} (id bigint primary key, name text not null, description text, visibility int not null default 0)`,
  );
  return `${t.schema}.${name}`;
}

/** The queue's waiting jobs, read on rota's pool (outside `app`'s transaction), by row key. */
async function queuedJobs(queue: string) {
  const result = await t.db.pool.query<{ id: string; payload: Captured; unique_key: string }>(
    `select id::text, payload, unique_key from ${pg.escapeIdentifier(t.schema)}.jobs
     where queue = $1 and state in ('available', 'scheduled') order by unique_key`,
    [queue],
  );
  return result.rows;
}

async function catalogCounts(name: string) {
  const result = await t.app.query<{ triggers: number; functions: number }>(
    `select (select count(*) from pg_trigger where tgname like $1)::int as triggers,
            (select count(*) from pg_proc where proname = $2
               and pronamespace = $3::regnamespace)::int as functions`,
    [`rota_capture_${name}_%`, `capture_${name}`, t.schema],
  );
  return result.rows[0];
}

describe("a change made by raw SQL", () => {
  it("is processed by a worker, with key, operation and row; an uncaptured column is ignored", async () => {
    const table = await createTable("projects");
    await t.rota.capture.add({
      name: "projects",
      table,
      columns: ["name", "visibility"],
      on: ["insert", "update", "delete"],
      task: "sync-raw",
      queue: "raw",
    });
    const { seen } = await startWorker("raw");

    await t.app.query(`insert into ${table} (id, name) values (1, 'one'), (2, 'two')`);
    await expect.poll(() => seen.length).toBe(2);
    expect(seen).toContainEqual({
      capture: "projects",
      op: "insert",
      key: { id: 1 },
      row: { name: "one", visibility: 0 },
    });

    await t.app.query(`update ${table} set visibility = 20 where id = 1`);
    await expect.poll(() => seen.length).toBe(3);
    expect(seen[2]).toEqual({
      capture: "projects",
      op: "update",
      key: { id: 1 },
      row: { name: "one", visibility: 20 },
    });

    // A column not named, and a named one set to the value it had: no job.
    await t.app.query(`update ${table} set description = 'new text'`);
    await t.app.query(`update ${table} set visibility = visibility`);
    expect(await queuedJobs("raw")).toEqual([]);

    await t.app.query(`delete from ${table} where id = 2`);
    await expect.poll(() => seen.length).toBe(4);
    expect(seen[3]).toEqual({
      capture: "projects",
      op: "delete",
      key: { id: 2 },
      row: { name: "two", visibility: 0 },
    });
    expect(seen).toHaveLength(4);
  });

  it("carries the whole row without columns, keys a composite key, and reads a key change as delete + insert", async () => {
    const table = `${t.schema}.memberships`;
    await t.app.query(
      `create table ${table} (org int, member int, role text, primary key (org, member))`,
    );
    await t.rota.capture.add({
      name: "memberships",
      table,
      on: ["update"],
      task: "sync-whole",
      queue: "whole",
    });
    await t.app.query(`insert into ${table} values (1, 1, 'dev'), (1, 2, 'dev')`);
    expect(await queuedJobs("whole")).toEqual([]); // inserts are not captured here

    await t.app.query(`update ${table} set role = 'admin' where member = 1`);
    await t.app.query(`update ${table} set member = 3 where member = 2`);
    const jobs = await queuedJobs("whole");
    expect(jobs.map((j) => [j.payload.op, j.payload.key, j.payload.row])).toEqual([
      ["update", { org: 1, member: 1 }, { org: 1, member: 1, role: "admin" }],
      // The key the row left, and the key it moved to (order by key in one statement).
      ["delete", { org: 1, member: 2 }, { org: 1, member: 2, role: "dev" }],
      ["insert", { org: 1, member: 3 }, { org: 1, member: 3, role: "dev" }],
    ]);
    expect(jobs[0]?.unique_key).toBe('capture:memberships:{"org": 1, "member": 1}');
    await t.rota.capture.remove("memberships");
  });

  it("is captured for an application whose role has no rights on rota's schema", async () => {
    const table = await createTable("guarded");
    await t.rota.capture.add({
      name: "guarded",
      table,
      on: ["update"],
      task: "sync-guarded",
      queue: "guarded",
    });
    await t.app.query(`insert into ${table} (id, name) values (1, 'one')`);
    const role = `${t.schema}_app`;
    await t.app.query(`create role ${role}`);
    try {
      await t.app.query(`grant usage on schema ${t.schema} to ${role}`);
      await t.app.query(`grant select, update on ${table} to ${role}`);
      await t.app.query("begin");
      await t.app.query(`set local role ${role}`);
      await expect(t.app.query(`select count(*) from ${t.schema}.jobs`)).rejects.toThrow(
        /permission denied/,
      );
      await t.app.query("rollback");
      await t.app.query("begin");
      await t.app.query(`set local role ${role}`);
      await t.app.query(`update ${table} set name = 'renamed'`);
      await t.app.query("commit");
      expect((await queuedJobs("guarded")).map((j) => j.payload.row.name)).toEqual(["renamed"]);
    } finally {
      await t.app.query("rollback").catch(() => {});
      await t.rota.capture.remove("guarded");
      await t.app.query(`drop table ${table}`);
      await t.app.query(`drop owned by ${role}`);
      await t.app.query(`drop role ${role}`);
    }
  });
});

describe("coalescing", () => {
  it("folds 100 updates to one row, before a worker runs, into one job with the latest image", async () => {
    const table = await createTable("hot");
    await t.rota.capture.add({
      name: "hot",
      table,
      columns: ["name"],
      on: ["insert", "update"],
      task: "sync-hot",
      queue: "hot",
    });
    await t.app.query(`insert into ${table} (id, name) values (1, 'v0'), (2, 'other')`);
    for (let i = 1; i <= 100; i++) {
      await t.app.query(`update ${table} set name = $1 where id = 1`, [`v${i}`]);
    }
    const queued = await queuedJobs("hot");
    expect(queued.map((j) => j.payload)).toEqual([
      { capture: "hot", op: "update", key: { id: 1 }, row: { name: "v100" } },
      { capture: "hot", op: "insert", key: { id: 2 }, row: { name: "other" } },
    ]);

    const { seen } = await startWorker("hot");
    await expect.poll(() => seen.length).toBe(2);
    expect(seen.filter((p) => p.key.id === 1)).toEqual([
      { capture: "hot", op: "update", key: { id: 1 }, row: { name: "v100" } },
    ]);
  });
});

describe("the poll as safety net", () => {
  it("runs captured jobs with LISTEN off (no wake-up ever arrives)", async () => {
    const table = await createTable("deaf");
    await t.rota.capture.add({
      name: "deaf",
      table,
      on: ["insert"],
      task: "sync-deaf",
      queue: "deaf",
    });
    const { worker, seen } = await startWorker("deaf", { listen: false });
    // Idle and polling before the change, so only a poll can find its job.
    await expect.poll(() => worker.idle).toBe(true);
    await t.app.query(`insert into ${table} (id, name) values (7, 'seven')`);
    await expect.poll(() => seen.length).toBe(1);
    expect(seen[0]).toMatchObject({ op: "insert", key: { id: 7 }, row: { id: 7, name: "seven" } });
  });
});

describe("the queue's pause as kill switch", () => {
  it("accumulates captured jobs, coalesced, and drains them on resume", async () => {
    const table = await createTable("paused");
    await t.app.query(
      `insert into ${table} (id, name) select g, 'v0' from generate_series(1, 3) g`,
    );
    await t.rota.capture.add({
      name: "paused",
      table,
      columns: ["name"],
      on: ["update"],
      task: "sync-killed",
      queue: "killed",
    });
    await t.rota.queues.pause("killed");
    const { worker, seen } = await startWorker("killed");
    for (let i = 1; i <= 5; i++) {
      await t.app.query(`update ${table} set name = $1`, [`v${i}`]);
    }
    // Several claims come and go with the queue paused: nothing runs.
    const claims = worker.claims;
    await expect.poll(() => worker.claims).toBeGreaterThanOrEqual(claims + 3);
    expect(seen).toEqual([]);
    const [listed] = (await t.rota.capture.list()).filter((c) => c.name === "paused");
    expect(listed).toMatchObject({ paused: true, queued: 3, status: "ok" });

    await t.rota.queues.resume("killed");
    await expect.poll(() => seen.length).toBe(3);
    expect(seen.map((p) => [p.key.id, p.row.name]).sort()).toEqual([
      [1, "v5"],
      [2, "v5"],
      [3, "v5"],
    ]);
    await expect.poll(async () => (await queuedJobs("killed")).length).toBe(0);
  });
});

describe("transactions", () => {
  it("a rolled-back change (or savepoint) leaves no job; a committed one leaves its job", async () => {
    const table = await createTable("tx");
    await t.rota.capture.add({ name: "tx", table, on: ["insert"], task: "sync-tx", queue: "tx" });
    await t.app.query("begin");
    await t.app.query(`insert into ${table} (id, name) values (1, 'gone')`);
    expect(await queuedJobs("tx")).toEqual([]); // not visible outside the transaction...
    await t.app.query("rollback");
    expect(await queuedJobs("tx")).toEqual([]); // ...and gone with it
    await t.app.query("begin");
    await t.app.query(`insert into ${table} (id, name) values (2, 'kept')`);
    await t.app.query("savepoint undone");
    await t.app.query(`insert into ${table} (id, name) values (3, 'undone')`);
    await t.app.query("rollback to savepoint undone");
    await t.app.query("commit");
    expect((await queuedJobs("tx")).map((j) => j.payload.key)).toEqual([{ id: 2 }]);
  });

  it("a capture added in the caller's rolled-back transaction leaves nothing installed", async () => {
    const client = await t.db.pool.connect();
    try {
      await client.query("begin");
      await client.query(`create table ${t.schema}.born (id int primary key)`);
      await t.rota.capture.add(
        { name: "born", table: `${t.schema}.born`, on: ["insert"], task: "x" },
        { client },
      );
      await client.query("rollback");
    } finally {
      client.release();
    }
    expect(await t.rota.capture.get("born")).toBeNull();
    expect(await catalogCounts("born")).toEqual({ triggers: 0, functions: 0 });
  });
});

describe("remove and list", () => {
  it("remove drops the triggers and the function, and forgets the capture", async () => {
    const table = await createTable("removed");
    await t.rota.capture.add({
      name: "removed",
      table,
      on: ["insert", "update", "delete"],
      task: "x",
      queue: "removed",
    });
    expect(await catalogCounts("removed")).toEqual({ triggers: 3, functions: 1 });
    const removed = await t.rota.capture.remove("removed");
    expect(removed.droppedTriggers).toHaveLength(3);
    expect(await catalogCounts("removed")).toEqual({ triggers: 0, functions: 0 });
    expect(await t.rota.capture.get("removed")).toBeNull();
    await t.app.query(`insert into ${table} (id, name) values (1, 'after')`);
    expect(await queuedJobs("removed")).toEqual([]);
    await expect(t.rota.capture.remove("removed")).rejects.toMatchObject({
      code: "CAPTURE_NOT_FOUND",
    });
  });

  it("list reports a dropped table, a missing or disabled trigger; re-adding repairs, remove cleans up", async () => {
    const status = async (name: string): Promise<CaptureInfo | null> => t.rota.capture.get(name);
    const table = await createTable("watched");
    const spec = { name: "watched", table, on: ["insert", "update"], task: "x" } as const;
    await t.rota.capture.add(spec);
    expect(await status("watched")).toMatchObject({ status: "ok", missing: [] });

    await t.app.query(`alter table ${table} disable trigger rota_capture_watched_update`);
    expect(await status("watched")).toMatchObject({
      status: "trigger_disabled",
      missing: ["update"],
    });
    await t.app.query(`drop trigger rota_capture_watched_insert on ${table}`);
    expect(await status("watched")).toMatchObject({
      status: "trigger_missing",
      missing: ["insert", "update"],
    });
    await t.rota.capture.add(spec);
    expect(await status("watched")).toMatchObject({ status: "ok", missing: [] });

    await t.app.query(`drop table ${table}`);
    expect(await status("watched")).toMatchObject({ status: "table_missing" });
    expect(await catalogCounts("watched")).toEqual({ triggers: 0, functions: 1 });
    expect((await t.rota.capture.remove("watched")).droppedTriggers).toEqual([]);
    expect(await catalogCounts("watched")).toEqual({ triggers: 0, functions: 0 });
  });

  it("adding again on the same table updates the capture; its events follow", async () => {
    const table = await createTable("changing");
    await t.rota.capture.add({ name: "changing", table, on: ["insert", "delete"], task: "x" });
    const updated = await t.rota.capture.add({
      name: "changing",
      table,
      columns: ["name"],
      on: ["update"],
      task: "y",
      queue: "elsewhere",
    });
    expect(updated).toMatchObject({
      on: ["update"],
      columns: ["name"],
      task: "y",
      queue: "elsewhere",
      status: "ok",
    });
    expect(await catalogCounts("changing")).toEqual({ triggers: 1, functions: 1 });
    await t.rota.capture.remove("changing");
  });
});

describe("bad input", () => {
  it("is refused with a code, and nothing is written", async () => {
    const table = await createTable("strict");
    await t.app.query(`create table ${t.schema}.no_key (a int)`);
    await t.app.query(`create table ${t.schema}.other (id int primary key)`);
    await t.app.query(`create view ${t.schema}.a_view as select * from ${table}`);
    await t.rota.capture.add({
      name: "taken",
      table: `${t.schema}.other`,
      on: ["insert"],
      task: "x",
    });
    const before = await t.rota.capture.list();
    const base = { name: "strict", table, on: ["update"], task: "x" } as const;
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: "Strict" }, "INVALID_CAPTURE", /lower-case/],
      [{ name: "a:b" }, "INVALID_CAPTURE", /capture name/],
      [{ name: "x".repeat(41) }, "INVALID_CAPTURE", /1-40/],
      [{ table: `${t.schema}.nope` }, "INVALID_CAPTURE", /no table/],
      [{ table: "not a name" }, "INVALID_CAPTURE", /not a table name/],
      [{ table: `${t.schema}.a_view` }, "INVALID_CAPTURE", /not a table/],
      [{ on: [] }, "INVALID_CAPTURE", /at least one event/],
      [{ on: ["truncate"] }, "INVALID_CAPTURE", /unknown event/],
      [{ columns: ["Name"] }, "INVALID_CAPTURE", /did you mean "name"/],
      [{ columns: [] }, "INVALID_CAPTURE", /non-empty list/],
      [{ key: "description" }, "INVALID_CAPTURE", /may be NULL/],
      [{ key: "name" }, "INVALID_CAPTURE", /does not identify a row/],
      [{ table: `${t.schema}.no_key` }, "INVALID_CAPTURE", /no primary key/],
      [{ name: "taken" }, "INVALID_CAPTURE", /already on/],
      [{ task: "bad task" }, "INVALID_TASK_NAME", /task name/],
      [{ queue: "bad queue" }, "INVALID_QUEUE_NAME", /queue/],
      [{ colums: ["name"] }, "INVALID_OPTION", /did you mean "columns"/],
    ];
    for (const [change, code, message] of cases) {
      const error = await t.rota.capture.add({ ...base, ...change } as never).catch((e) => e);
      expect(isRotaError(error), JSON.stringify(change)).toBe(true);
      expect(error.code, JSON.stringify(change)).toBe(code);
      expect(error.message, JSON.stringify(change)).toMatch(message);
    }
    expect(await t.rota.capture.list()).toEqual(before);
    expect(await catalogCounts("strict")).toEqual({ triggers: 0, functions: 0 });
    await t.rota.capture.remove("taken");
  });
});
