// rota.findJobs: keyset pages of jobs, newest first, by state, queue, task,
// creation time and payload containment; a payload search reads at most
// 100,000 jobs a call and says where it stopped.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobQueries } from "../../src/db/queries/jobs.js";
import { FIND_SCAN_LIMIT, type FindJobsFilter } from "../../src/queue/job-admin.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

/** Every page of `filter`, `limit` at a time, following `next`. */
async function allPages(filter: FindJobsFilter, limit: number) {
  const pages: string[][] = [];
  let before: string | undefined;
  for (;;) {
    const page = await t.rota.findJobs({ ...filter, limit, ...(before ? { before } : {}) });
    pages.push(page.jobs.map((j) => j.id));
    if (page.next === null) return pages;
    before = page.next;
  }
}

const byIdDesc = (a: string, b: string) => (BigInt(b) > BigInt(a) ? 1 : -1);

describe("listJobs", () => {
  it("is newest first by id as a number (not as text: 9 after 10)", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await t.rota.enqueue("list.order", {})).id);
    const listed = await t.rota.listJobs({ task: "list.order" });
    expect(listed.map((j) => j.id)).toEqual([...ids].sort(byIdDesc));
    expect(listed.map((j) => j.id)).toEqual(ids.reverse());
  });
});

describe("findJobs filters", () => {
  interface Made {
    id: string;
    queue: string;
    task: string;
    state: string;
    created: Date;
    payload: Record<string, unknown>;
  }
  const made: Made[] = [];
  const base = new Date("2026-03-01T00:00:00Z");
  /** Only this block's jobs (the others were created now). */
  const ours = { createdFrom: base, createdTo: new Date(base.getTime() + 86_400_000) };

  beforeAll(async () => {
    for (let i = 0; i < 40; i++) {
      const queue = i % 2 === 0 ? "find.a" : "find.b";
      const task = i % 3 === 0 ? "find.x" : "find.y";
      const payload = {
        n: i,
        tenant: i % 4,
        order: { customer: { id: i % 5 }, lines: [i % 2, 7] },
        note:
          i === 13 ? `He said "hi" <script>alert('x')</script> \\ '; drop table jobs; --` : "plain",
      };
      const { id } = await t.rota.enqueue(task, payload, { queue });
      const state = i % 5 === 0 ? "failed" : i % 5 === 1 ? "cancelled" : "available";
      const created = new Date(base.getTime() + i * 60_000);
      await t.db.pool.query(
        `update "${t.schema}".jobs set state = $2, created_at = $3,
           finished_at = case when $2 = 'available' then null else now() end where id = $1`,
        [id, state, created],
      );
      made.push({ id, queue, task, state, created, payload });
    }
  });

  const expected = (keep: (m: Made) => boolean) =>
    made
      .filter(keep)
      .map((m) => m.id)
      .sort(byIdDesc);

  it("each filter alone, and all of them together", async () => {
    const cases: [FindJobsFilter, (m: Made) => boolean][] = [
      [{}, () => true],
      [{ state: "failed" }, (m) => m.state === "failed"],
      [{ state: "cancelled" }, (m) => m.state === "cancelled"],
      [{ queue: "find.a" }, (m) => m.queue === "find.a"],
      [{ task: "find.x" }, (m) => m.task === "find.x"],
      [
        { createdFrom: new Date(base.getTime() + 10 * 60_000) },
        (m) => m.created.getTime() >= base.getTime() + 10 * 60_000,
      ],
      [
        { createdFrom: base, createdTo: new Date(base.getTime() + 10 * 60_000) },
        (m) => m.created.getTime() < base.getTime() + 10 * 60_000,
      ],
      [{ payload: { tenant: 2 } }, (m) => m.payload.tenant === 2],
      [
        {
          state: "available",
          queue: "find.b",
          task: "find.y",
          createdFrom: new Date(base.getTime() + 5 * 60_000),
          createdTo: new Date(base.getTime() + 30 * 60_000),
          payload: { tenant: 3 },
        },
        (m) =>
          m.state === "available" &&
          m.queue === "find.b" &&
          m.task === "find.y" &&
          m.created.getTime() >= base.getTime() + 5 * 60_000 &&
          m.created.getTime() < base.getTime() + 30 * 60_000 &&
          m.payload.tenant === 3,
      ],
    ];
    for (const [filter, keep] of cases) {
      const page = await t.rota.findJobs({ ...ours, ...filter, limit: 500 });
      expect(page.jobs.map((j) => j.id)).toEqual(expected(keep));
      expect(page.next).toBeNull();
    }
    const combined = await t.rota.findJobs({ ...ours, ...cases.at(-1)?.[0] });
    expect(combined.jobs.length).toBeGreaterThan(0);
    expect(combined.jobs[0]).toMatchObject({
      queue: "find.b",
      task: "find.y",
      state: "available",
      max_attempts: 25,
    });
  });

  it("a job's row is the listJobs summary, with its last error's message", async () => {
    const failed = made.find((m) => m.state === "failed") as Made;
    await t.db.pool.query(
      `update "${t.schema}".jobs set last_error = '{"message": "boom", "stack": "…"}' where id = $1`,
      [failed.id],
    );
    const page = await t.rota.findJobs({ before: String(BigInt(failed.id) + 1n), limit: 1 });
    expect(page.jobs).toEqual([
      {
        id: failed.id,
        queue: failed.queue,
        task: failed.task,
        state: "failed",
        priority: 0,
        run_at: expect.any(Date),
        attempts: 0,
        max_attempts: 25,
        last_error: "boom",
        created_at: failed.created,
        finished_at: expect.any(Date),
      },
    ]);
    const listed = (await t.rota.listJobs({ state: "failed", limit: 10_000 })).find(
      (j) => j.id === failed.id,
    );
    expect(listed).toEqual(page.jobs[0]);
  });

  it("keyset pages cover every job exactly once, newest first", async () => {
    for (const [filter, keep] of [
      [ours, () => true],
      [{ ...ours, queue: "find.a" }, (m: Made) => m.queue === "find.a"],
      [{ ...ours, payload: { tenant: 1 } }, (m: Made) => m.payload.tenant === 1],
    ] as [FindJobsFilter, (m: Made) => boolean][]) {
      for (const limit of [1, 3, 7, 40]) {
        const pages = await allPages(filter, limit);
        expect(pages.flat()).toEqual(expected(keep));
        // Every page full but the last (a search that read every job stops at the first).
        for (const page of pages.slice(0, -1)) expect(page).toHaveLength(limit);
      }
    }
    // Exactly divisible: the last full page says there is nothing older.
    const all = expected(() => true);
    const page = await t.rota.findJobs({ ...ours, before: all[29], limit: 10 });
    expect(page.jobs.map((j) => j.id)).toEqual(all.slice(30));
    expect(page.next).toBeNull();
  });

  it("payload containment: nested objects, arrays, quotes and markup, taken as a value", async () => {
    const ids = async (payload: FindJobsFilter["payload"]) =>
      (await t.rota.findJobs({ ...ours, payload, limit: 500 })).jobs.map((j) => j.id);
    expect(await ids({ order: { customer: { id: 4 } } })).toEqual(
      expected((m) => (m.payload.order as { customer: { id: number } }).customer.id === 4),
    );
    expect(await ids({ order: { lines: [1] } })).toEqual(
      expected((m) => (m.payload.n as number) % 2 === 1),
    );
    expect(await ids({ order: { lines: [7] } })).toEqual(expected(() => true));
    expect(
      await ids({ note: `He said "hi" <script>alert('x')</script> \\ '; drop table jobs; --` }),
    ).toEqual(expected((m) => m.payload.n === 13));
    expect(await ids({ note: "<script>" })).toEqual([]);
    expect(await ids({ tenant: "2" })).toEqual([]); // the string, not the number
    expect(await ids({})).toEqual(expected(() => true));
    expect(await ids([])).toEqual([]); // an array contains no object payload
    // The jobs table is still there.
    expect((await t.rota.findJobs({ ...ours })).jobs).toHaveLength(40);
  });

  it("refuses a bad field by name, before any SQL", async () => {
    const bad: [unknown, string][] = [
      [{ state: "done" }, "state"],
      [{ state: 1 }, "state"],
      [{ queue: "" }, "queue"],
      [{ task: 7 }, "task"],
      [{ createdFrom: "2026-01-01" }, "createdFrom"],
      [{ createdTo: new Date(Number.NaN) }, "createdTo"],
      [{ createdFrom: base, createdTo: base }, "createdTo"],
      [{ payload: "tenant" }, "payload"],
      [{ payload: null }, "payload"],
      [{ payload: new Date() }, "payload"],
      [{ payload: { s: "nul \u0000" } }, "payload"],
      [{ payload: { big: 1n } }, "payload"],
      [{ before: "0" }, "before"],
      [{ before: "-5" }, "before"],
      [{ before: "12abc" }, "before"],
      [{ before: "1; drop table jobs" }, "before"],
      [{ before: 42 }, "before"],
      [{ before: "9223372036854775808" }, "before"],
      [{ limit: 0 }, "limit"],
      [{ limit: 501 }, "limit"],
      [{ limit: 2.5 }, "limit"],
      [{ stat: "failed" }, "stat"],
      ["failed", "filter"],
    ];
    for (const [filter, field] of bad) {
      await expect(
        t.rota.findJobs(filter as FindJobsFilter),
        JSON.stringify(field),
      ).rejects.toMatchObject({
        code: "INVALID_OPTION",
        details: { field },
      });
    }
    expect((await t.rota.findJobs({ before: "9223372036854775807", limit: 1 })).jobs).toHaveLength(
      1,
    );
    expect((await t.rota.findJobs({ before: "1" })).jobs).toEqual([]);
  });
});

describe("findJobs on a large table", () => {
  let needle: string;
  let bulkTop: string;

  beforeAll(async () => {
    // A match below 100,000 newer jobs, inserted in one statement.
    needle = (await t.rota.enqueue("find.needle", { needle: "deep" })).id;
    await t.db.pool.query(
      `insert into "${t.schema}".jobs (task, queue, payload, state, run_at, finished_at)
       select 'find.bulk', 'find.bulk', jsonb_build_object('n', g),
              case when g % 10 = 0 then 'failed' else 'succeeded' end, now(), now()
       from generate_series(1, $1::int) as g`,
      [FIND_SCAN_LIMIT + 5],
    );
    await t.db.pool.query(`analyze "${t.schema}".jobs`);
    bulkTop = (await t.rota.findJobs({ limit: 1 })).jobs[0]?.id as string;
  });

  it("a payload search reads at most 100,000 jobs a call, says where it stopped, and goes on from there", async () => {
    const first = await t.rota.findJobs({ payload: { needle: "deep" } });
    expect(first.jobs).toEqual([]);
    expect(first.next).not.toBeNull();
    expect(first.scannedTo).toBe(first.next);
    // It read exactly the 100,000 newest jobs.
    const read = await t.db.pool.query(
      `select count(*)::int as n from "${t.schema}".jobs where id >= $1`,
      [first.next],
    );
    expect(read.rows[0].n).toBe(FIND_SCAN_LIMIT);
    expect(BigInt(first.next as string)).toBeGreaterThan(BigInt(needle));

    const second = await t.rota.findJobs({
      payload: { needle: "deep" },
      before: first.next as string,
    });
    expect(second.jobs.map((j) => j.id)).toEqual([needle]);
    // It reached the first job: nothing older to read.
    expect(second.next).toBeNull();
    const lowest = await t.db.pool.query(`select min(id)::text as id from "${t.schema}".jobs`);
    expect(second.scannedTo).toBe(lowest.rows[0].id);
  });

  it("a payload page that fills first goes on from its last job", async () => {
    const page = await t.rota.findJobs({ payload: {}, queue: "find.bulk", limit: 1 });
    expect(page.jobs.map((j) => j.id)).toEqual([bulkTop]);
    expect(page.next).toBe(bulkTop);
    expect(page.scannedTo).toBe(page.next);
    const common = await t.rota.findJobs({ payload: {}, limit: 500 });
    expect(common.jobs).toHaveLength(500);
    expect(common.jobs[0]?.id).toBe(bulkTop);
    expect(common.next).toBe(common.jobs[499]?.id);
  });

  it("the newest page and the failed page read an index, not the whole table", async () => {
    const q = jobQueries(t.schema);
    const plan = async (filter: { state: string | null }) => {
      const values: Record<string, unknown> = {
        before: "9223372036854775807",
        state: filter.state,
        queue: null,
        task: null,
        createdFrom: null,
        createdTo: null,
        limit: 51,
      };
      // As findJobs sends Find: unnamed, so planned with these values.
      const result = await t.db.pool.query({
        text: `explain (format json) ${q.Find.text}`,
        values: q.Find.params.map((name) => values[name]),
      });
      const nodes: Record<string, unknown>[] = [];
      const walk = (node: Record<string, unknown>) => {
        nodes.push(node);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? [])
          walk(child);
      };
      walk(result.rows[0]["QUERY PLAN"][0].Plan);
      return nodes;
    };
    for (const state of [null, "failed"]) {
      const nodes = await plan({ state });
      expect(nodes.map((n) => n["Node Type"])).not.toContain("Seq Scan");
      expect(nodes.some((n) => typeof n["Index Name"] === "string")).toBe(true);
    }
    expect(q.Find.prepared).toBe(false);
  });
});
