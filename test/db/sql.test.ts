import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { Database, type Executor } from "../../src/db/database.js";
import { enqueueQueries } from "../../src/db/queries/enqueue.js";
import { jobQueries } from "../../src/db/queries/jobs.js";
import { scheduleQueries } from "../../src/db/queries/schedules.js";
import { compilePlaceholders, queriesFromSource, statement } from "../../src/db/sql.js";

const compile = (sql: string) => compilePlaceholders(sql, "test.sql: query T");

describe("named placeholders", () => {
  it("are numbered in the order they first appear, and a name used again keeps its number", () => {
    expect(compile("select :b, :a where x = :b and y = :c")).toEqual({
      text: "select $1, $2 where x = $1 and y = $3",
      params: ["b", "a", "c"],
    });
  });

  it("end at a cast, and :: alone is never a placeholder", () => {
    expect(compile("select unnest(:queues::text[]), now()::date, :n::int + 1")).toEqual({
      text: "select unnest($1::text[]), now()::date, $2::int + 1",
      params: ["queues", "n"],
    });
  });

  it("take camelCase and snake_case names with digits", () => {
    expect(compile("select :leaseMs, :lease_ms2")).toEqual({
      text: "select $1, $2",
      params: ["leaseMs", "lease_ms2"],
    });
  });

  it("are left alone in string literals, quoted identifiers, comments and templates", () => {
    const sql = [
      "select ':no', 'it''s :no', E'\\' :no', $$ :no $$, $tag$ :no $tag$, \":no\"",
      "-- a comment naming :no",
      "/* a block :no /* nested :no */ still :no */",
      "from {{schema}}.jobs where pg_notify({{channel:jobs}}, :yes) and a[lo:hi] = 1",
    ].join("\n");
    const { text, params } = compile(sql);
    expect(params).toEqual(["yes"]);
    expect(text).toBe(sql.replace(":yes", "$1"));
  });

  it("refuse a positional $n, so a statement never mixes the two", () => {
    expect(() => compile("select :a, $2")).toThrow(/positional parameter \$2/);
  });

  it("refuse an unterminated string or comment", () => {
    expect(() => compile("select 'open")).toThrow(/unterminated '/);
    expect(() => compile("select 1 /* open")).toThrow(/unterminated \/\*/);
  });
});

const SOURCE = `
-- name: Find
-- Rows of :kind, at most :limit.
select id, kind from t where kind = :kind::text and (:after::bigint is null or id > :after) limit :limit;

-- name: Count
select count(*)::int as n from t;
`;

/** An executor that records what it is asked to run, and runs nothing. */
function recorder(): Executor & { sent: pg.QueryConfig[] } {
  const sent: pg.QueryConfig[] = [];
  return {
    sent,
    query: async (config: pg.QueryConfig) => {
      sent.push(config);
      return { rows: [], rowCount: 0 } as unknown as pg.QueryResult;
    },
  } as Executor & { sent: pg.QueryConfig[] };
}

describe("query modules", () => {
  const declared = {
    Find: statement<
      { kind: string; after: string | null; limit: number },
      { id: string; kind: string }
    >(),
    Count: statement<Record<never, never>, { n: number }>(),
  };
  // Never connects: every statement here goes to a recording executor.
  const db = new Database({ connection: "postgres://nobody@127.0.0.1:1/none" });
  afterAll(() => db.close());

  it("bind each statement per schema with a stable name and its parameters in $n order", () => {
    const q = queriesFromSource(SOURCE, "things", declared)("s1");
    expect(q.Find.name).toBe("rota.s1.things.Find");
    expect(q.Find.params).toEqual(["kind", "after", "limit"]);
    expect(q.Find.text).toContain(
      "where kind = $1::text and ($2::bigint is null or id > $2) limit $3",
    );
    expect(q.Find.text).toContain("-- Rows of :kind, at most :limit.");
    expect(q.Count.params).toEqual([]);
  });

  it("send the values in $n order, null as given", async () => {
    const q = queriesFromSource(SOURCE, "things", declared)("s1");
    const executor = recorder();
    await db.run(q.Find, { limit: 5, after: null, kind: "a" }, executor);
    await db.run(q.Count, undefined, executor);
    expect(executor.sent).toEqual([
      { name: "rota.s1.things.Find", text: q.Find.text, values: ["a", null, 5] },
      { name: "rota.s1.things.Count", text: q.Count.text, values: [] },
    ]);
  });

  it("send a statement declared planEachCall unnamed, so it is planned for each call's values", async () => {
    const q = queriesFromSource(SOURCE, "things", {
      ...declared,
      Find: statement<{ kind: string; after: string | null; limit: number }>({
        planEachCall: true,
      }),
    })("s1");
    expect(q.Find.prepared).toBe(false);
    expect(q.Count.prepared).toBe(true);
    const executor = recorder();
    await db.run(q.Find, { limit: 5, after: null, kind: "a" }, executor);
    expect(executor.sent).toEqual([{ text: q.Find.text, values: ["a", null, 5] }]);
  });

  it("refuse a missing (undefined) parameter instead of sending NULL", async () => {
    const q = queriesFromSource(SOURCE, "things", declared)("s1");
    const executor = recorder();
    const params = { kind: "a", limit: 5 } as { kind: string; after: null; limit: number };
    await expect(db.run(q.Find, params, executor)).rejects.toThrow(
      "rota.s1.things.Find: parameter after is undefined (pass null for NULL)",
    );
    expect(executor.sent).toEqual([]);
  });

  it("fail at load when a declared statement is not in the file", () => {
    expect(() =>
      queriesFromSource(SOURCE, "things", { ...declared, Remove: statement<{ id: string }>() }),
    ).toThrow("things.sql: missing query Remove");
  });

  it("fail at load when the file has a statement that is not declared", () => {
    expect(() => queriesFromSource(SOURCE, "things", { Find: declared.Find })).toThrow(
      "things.sql: unexpected query Count",
    );
  });

  it("load rota's own statement files", () => {
    const jobs = jobQueries("s2");
    expect(jobs.Claim.params).toEqual([
      "limit",
      "startNow",
      "queues",
      "tasks",
      "passOver",
      "workerId",
      "leaseMs",
      "traced",
    ]);
    expect(enqueueQueries("s2").CopyJobs.params).toEqual([]);
    expect(enqueueQueries("s2").CopyJobsTraced.params).toEqual([]);
    expect(scheduleQueries("s2").Upsert.params).toHaveLength(22);
  });
});
