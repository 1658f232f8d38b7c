// The statements a worker runs on the jobs it holds (outcomes, heartbeats,
// starts, hand-backs) find each job through the primary key, however stale
// the table's statistics. Planned against a jobs_running_lease estimate
// taken while no job ran, a batch of outcomes once compared every running
// job with every id in it (55 µs an outcome with 250 jobs held, growing
// with the jobs all workers hold). The fence leaves the state out and the
// check jobs_lease_only_running keeps it exact (jobs.sql, migration 0023).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobQueries } from "../../src/db/queries/jobs.js";
import { migratedSchemaWithClient, type TestSchemaWithClient } from "../helpers/database.js";

const WORKER = "w-fence";
const HELD = 600;
const BATCH = 200;

let t: TestSchemaWithClient;
let heldIds: string[];

beforeAll(async () => {
  t = await migratedSchemaWithClient();
  const jobs = `${pg.escapeIdentifier(t.schema)}.jobs`;
  // No autovacuum of this table: its statistics stay those of the ANALYZE below.
  await t.app.query(`alter table ${jobs} set (autovacuum_enabled = false)`);
  await t.rota.enqueueMany(
    Array.from({ length: 50_000 }, (_, i) => ({ task: "noop", payload: { i } })),
  );
  // The statistics say no job runs...
  await t.app.query(`analyze ${jobs}`);
  // ...and then a worker holds 600.
  const held = await t.app.query<{ id: string }>(
    `update ${jobs} set state = 'running', attempts = 1, lease_holder = $1,
            lease_expires_at = now() + interval '30 seconds', started_at = now()
     where id in (select id from ${jobs} order by id limit ${HELD})
     returning id::text`,
    [WORKER],
  );
  heldIds = held.rows.map((r) => r.id).sort((a, b) => Number(a) - Number(b));
});
afterAll(async () => {
  await t?.drop();
});

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Join Filter"?: string;
  Plans?: PlanNode[];
}

function nodesOf(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodesOf)];
}

/** A value as an SQL literal of unknown type (an array in PostgreSQL's array form). */
function literal(value: unknown): string {
  if (Array.isArray(value)) {
    const items = value.map(
      (v) => `"${String(v).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`,
    );
    return pg.escapeLiteral(`{${items.join(",")}}`);
  }
  return pg.escapeLiteral(String(value));
}

/** The plan of a statement with these values, as a prepared statement's generic plan or a custom one. */
async function planOf(
  text: string,
  params: readonly string[],
  values: Record<string, unknown>,
  mode: "force_generic_plan" | "force_custom_plan",
): Promise<PlanNode[]> {
  await t.app.query("begin");
  try {
    await t.app.query(`set local plan_cache_mode = ${mode}`);
    await t.app.query(`prepare fenced as ${text}`);
    // EXECUTE takes no bind parameters: the values go in as literals.
    const args = params.map((name) => {
      if (!(name in values)) throw new Error(`no value for :${name}`);
      return literal(values[name]);
    });
    const result = await t.app.query(`explain (format json) execute fenced(${args.join(", ")})`);
    return nodesOf(result.rows[0]["QUERY PLAN"][0].Plan);
  } finally {
    await t.app.query("rollback");
    await t.app.query("deallocate all");
  }
}

describe("the worker's fenced statements", () => {
  it("find their jobs through the primary key, not by reading every running job, when the statistics say none runs", async () => {
    const q = jobQueries(t.schema);
    const batch = heldIds.slice(0, BATCH);
    const attempts = batch.map(() => 1);
    const values: Record<string, unknown> = {
      ids: batch,
      attempts,
      workerId: WORKER,
      wake: [],
      errors: batch.map(() => JSON.stringify({ message: "boom" })),
      retryMs: batch.map(() => 1000),
      cancelled: batch.map(() => false),
      leaseMs: 30_000,
      id: batch[0],
      attempt: 1,
    };
    const statements = {
      CompleteByDelete: q.CompleteByDelete,
      CompleteByKeep: q.CompleteByKeep,
      Fail: q.Fail,
      Heartbeat: q.Heartbeat,
      ExtendLease: q.ExtendLease,
      MarkStarted: q.MarkStarted,
      ReleaseUnstarted: q.ReleaseUnstarted,
    };
    for (const [name, statement] of Object.entries(statements)) {
      for (const mode of ["force_generic_plan", "force_custom_plan"] as const) {
        const nodes = await planOf(statement.text, statement.params, values, mode);
        const onJobs = nodes.filter((n) => n["Relation Name"] === "jobs");
        const where = `${name} (${mode})`;
        expect(onJobs.length, where).toBeGreaterThan(0);
        // Every read of jobs (the DML target's scan, and any join to it) by its primary key.
        for (const node of onJobs.filter((n) => n["Node Type"] !== "ModifyTable")) {
          expect(node["Index Name"], `${where}: ${node["Node Type"]}`).toBe("jobs_pkey");
        }
        expect(nodes.map((n) => n["Index Name"]).filter(Boolean), where).not.toContain(
          "jobs_running_lease",
        );
      }
    }
  });

  it("still write only the current attempt of the lease holder: an outcome of another worker, or of an earlier attempt, changes nothing", async () => {
    const db = t.db;
    const q = jobQueries(t.schema);
    const [mine, stale] = heldIds.slice(BATCH, BATCH + 2) as [string, string];
    const wrongWorker = await db.run(q.CompleteByDelete, {
      ids: [mine],
      attempts: [1],
      workerId: "someone-else",
      wake: [],
    });
    const wrongAttempt = await db.run(q.CompleteByDelete, {
      ids: [stale],
      attempts: [2],
      workerId: WORKER,
      wake: [],
    });
    expect(wrongWorker.rows).toEqual([]);
    expect(wrongAttempt.rows).toEqual([]);
    const right = await db.run(q.CompleteByDelete, {
      ids: [mine],
      attempts: [1],
      workerId: WORKER,
      wake: [],
    });
    expect(right.rows.map((r) => r.id)).toEqual([mine]);
  });

  it("rest on a check: no job holds a lease unless it runs", async () => {
    const jobs = `${pg.escapeIdentifier(t.schema)}.jobs`;
    const error = await t.app
      .query(
        `update ${jobs} set lease_holder = 'w-other' where id = (select id from ${jobs} where state = 'available' limit 1)`,
      )
      .catch((e: unknown) => e as { code?: string; constraint?: string });
    expect(error).toMatchObject({ code: "23514", constraint: "jobs_lease_only_running" });
    const running = await t.app.query(
      `select count(*)::int as n from ${jobs} where lease_holder is not null and state <> 'running'`,
    );
    expect(running.rows[0].n).toBe(0);
  });
});
