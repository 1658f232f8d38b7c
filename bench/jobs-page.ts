// rota.findJobs on a jobs table of 1,000,000 rows: the dashboard's jobs page
// must answer within 200 ms. Each case is timed twice: the API call, and the
// whole page as the dashboard serves it (its fetch handler: the token
// checked, findJobs, the HTML rendered), without the network. Loads the jobs in one INSERT ... SELECT over
// generate_series (a week of history: old jobs finished, the newest 15% a
// live backlog), VACUUM ANALYZEs (as autovacuum would after such an insert),
// then times each kind of page through the public API and prints the median
// of RUNS calls (after 3 warm-up calls) and the plan's scan per case: EXPLAIN
// of the statement with the case's values, as PostgreSQL plans Find at each
// call (it is sent unnamed); FindContaining is prepared, and its plan does
// not depend on the values. Drops its schema at the end.
//
//   DATABASE_URL=postgres://… node --import tsx bench/jobs-page.ts [RUNS] [ROWS]
import pg from "pg";
import { databaseOf, Rota } from "../src/client.js";
import { createDashboard } from "../src/dashboard/dashboard.js";
import { jobQueries } from "../src/db/queries/jobs.js";
import { silentLogger } from "../src/logger.js";
import { FIND_SCAN_LIMIT, type FindJobsFilter, type JobPage } from "../src/queue/job-admin.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL");
const runs = Number(process.argv[2] ?? 9);
const rows = Number(process.argv[3] ?? 1_000_000);
const schema = "rota_bench_jobs_page";
// One connection, as a dashboard's single request would use.
const rota = new Rota({ connection: url, schema, poolSize: 1 });
const db = databaseOf(rota);
const table = `${pg.escapeIdentifier(schema)}.jobs`;

await db.pool.query(`drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
await rota.migrate();

const loadStarted = performance.now();
await db.pool.query("select setseed(0.42)");
// Old jobs (the first 85% of ids): finished, mostly succeeded (kept by a
// retention), some failed, a few cancelled, rare skipped and missed
// schedule executions, no superseded. The newest 15%: the backlog, available
// and scheduled, some running, and the latest outcomes. Queues and tasks
// skewed (audit is 0.1% of the jobs); payload tenant 1 is in 20% of them,
// every other tenant in about 80.
await db.pool.query(
  `insert into ${table} (queue, task, payload, state, priority, run_at, attempts, max_attempts,
                         schedule_id, last_error, lease_holder, lease_expires_at,
                         created_at, started_at, finished_at)
   select queue, queue || '.' || (array['sync', 'send', 'build'])[1 + floor(r3 * 3)::int],
          jsonb_build_object('tenant', case when r4 < 0.2 then 1 else 2 + floor(r4 * 50000)::int % 10000 end,
                             'order', g, 'email', 'user' || g || '@example.com'),
          state, 0,
          case when state = 'scheduled' then now() + make_interval(secs => r3 * 86400) else created end,
          case when state in ('available', 'scheduled', 'skipped', 'missed') then 0
               when state = 'failed' then 5 else 1 end,
          5,
          case when state in ('skipped', 'missed') then 1 end,
          case when state = 'failed'
               then jsonb_build_object('message', 'upstream timed out after 30000 ms', 'attempt', 5) end,
          case when state = 'running' then 'bench:1:abc' end,
          case when state = 'running' then now() + interval '30 seconds' end,
          created,
          case when state in ('running', 'succeeded', 'failed') then created + interval '1 second' end,
          case when state in ('succeeded', 'failed', 'cancelled', 'skipped', 'missed')
               then created + interval '2 seconds' end
   from (
     select g, r3, r4, created,
            case when r2 < 0.40 then 'default' when r2 < 0.60 then 'mail'
                 when r2 < 0.75 then 'reports' when r2 < 0.85 then 'webhooks'
                 when r2 < 0.93 then 'billing' when r2 < 0.98 then 'sync'
                 when r2 < 0.999 then 'media' else 'audit' end as queue,
            case when g <= $1::int * 0.85 then
                   case when r1 < 0.78 then 'succeeded' when r1 < 0.95 then 'failed'
                        when r1 < 0.999 then 'cancelled' when r1 < 0.9998 then 'skipped'
                        else 'missed' end
                 else
                   case when r1 < 0.45 then 'available' when r1 < 0.75 then 'scheduled'
                        when r1 < 0.90 then 'succeeded' when r1 < 0.97 then 'failed'
                        when r1 < 0.985 then 'running' else 'cancelled' end
            end as state
     from (select g, random() as r1, random() as r2, random() as r3, random() as r4,
                  now() - interval '7 days' + (interval '7 days' / $1::int) * g as created
           from generate_series(1, $1::int) as g) as raw
   ) as jobs
   order by g`,
  [rows],
);
await db.pool.query(`vacuum analyze ${table}`);
const loadedMs = performance.now() - loadStarted;
const counts = await db.pool.query<{ state: string; n: string }>(
  `select state, count(*) as n from ${table} group by state order by count(*) desc`,
);
const now = Date.now();
const hour = 3_600_000;

interface Case {
  name: string;
  filter: FindJobsFilter | (() => Promise<FindJobsFilter>);
}

const states = [
  "succeeded",
  "failed",
  "available",
  "scheduled",
  "cancelled",
  "running",
  "skipped",
  "missed",
  "superseded",
];
const cases: Case[] = [
  { name: "no filter", filter: {} },
  ...states.map((state) => ({ name: `state=${state}`, filter: { state } })),
  { name: "failed in queue audit (0.02%)", filter: { state: "failed", queue: "audit" } },
  { name: "queue=mail", filter: { queue: "mail" } },
  { name: "queue=audit (0.1%)", filter: { queue: "audit" } },
  { name: "task=default.sync", filter: { task: "default.sync" } },
  { name: "task=audit.build (0.03%)", filter: { task: "audit.build" } },
  // The ceiling of a filter no index serves: the whole table walked.
  { name: "task=none (no such job)", filter: { task: "none" } },
  {
    name: "created: last hour",
    filter: { createdFrom: new Date(now - hour), createdTo: new Date(now) },
  },
  {
    name: "created: an hour 3 days ago",
    filter: { createdFrom: new Date(now - 72 * hour), createdTo: new Date(now - 71 * hour) },
  },
  {
    name: "created: an hour 6 days ago",
    filter: { createdFrom: new Date(now - 144 * hour), createdTo: new Date(now - 143 * hour) },
  },
  {
    name: "failed, created 3 days ago",
    filter: {
      state: "failed",
      createdFrom: new Date(now - 72 * hour),
      createdTo: new Date(now - 71 * hour),
    },
  },
  { name: "payload tenant=1 (20%)", filter: { payload: { tenant: 1 } } },
  { name: "payload tenant=4242 (rare)", filter: { payload: { tenant: 4242 } } },
  {
    name: "payload tenant=4242, next call",
    filter: async () => ({
      payload: { tenant: 4242 },
      before: (await rota.findJobs({ payload: { tenant: 4242 } })).next ?? undefined,
    }),
  },
  {
    name: "page 2 via next",
    filter: async () => ({ before: (await rota.findJobs({})).next ?? undefined }),
  },
  {
    name: "failed page 2 via next",
    filter: async () => ({
      state: "failed",
      before: (await rota.findJobs({ state: "failed" })).next ?? undefined,
    }),
  },
];

const q = jobQueries(schema);

/** The plan's scan: the nodes from the top to the first that reads the table, with its index. */
function planPath(plan: Record<string, unknown>): string {
  const path: string[] = [];
  let node: Record<string, unknown> | undefined = plan;
  while (node) {
    const type = String(node["Node Type"]);
    const direction = node["Scan Direction"] === "Backward" ? " Backward" : "";
    const index = node["Index Name"] ? ` ${node["Index Name"]}` : "";
    path.push(`${type}${direction}${index}`);
    if (/Scan/.test(type) && type !== "Subquery Scan") {
      if (type === "Bitmap Heap Scan") {
        const child = (node.Plans as Record<string, unknown>[] | undefined)?.[0];
        if (child?.["Index Name"]) path.push(`(${child["Index Name"]})`);
      }
      break;
    }
    node = (node.Plans as Record<string, unknown>[] | undefined)?.[0];
  }
  return path.filter((p) => !/^(Limit|Result|Subquery Scan)$/.test(p)).join(" > ");
}

/** EXPLAIN of the statement findJobs ran, with this filter's values. */
async function explain(filter: FindJobsFilter): Promise<string> {
  const payload = filter.payload === undefined ? null : JSON.stringify(filter.payload);
  const statement = payload === null ? q.Find : q.FindContaining;
  const values: Record<string, unknown> = {
    before: filter.before ?? "9223372036854775807",
    state: filter.state ?? null,
    queue: filter.queue ?? null,
    task: filter.task ?? null,
    createdFrom: filter.createdFrom?.toISOString() ?? null,
    createdTo: filter.createdTo?.toISOString() ?? null,
    limit: (filter.limit ?? 50) + 1,
    payload,
    scan: FIND_SCAN_LIMIT,
  };
  const result = await db.pool.query({
    text: `explain (format json) ${statement.text}`,
    values: statement.params.map((name) => values[name]),
  });
  return planPath(result.rows[0]["QUERY PLAN"][0].Plan);
}

const token = "bench-token-0123456789abcdef";
const dashboard = createDashboard(rota, {
  tokens: [{ name: "bench", token }],
  logger: silentLogger,
});

/** The jobs page's URL for a filter, as its form would send it. */
function pageUrl(filter: FindJobsFilter): string {
  const params = new URLSearchParams();
  for (const key of ["state", "queue", "task", "before"] as const) {
    const value = filter[key];
    if (value !== undefined) params.set(key, value);
  }
  if (filter.createdFrom) params.set("from", filter.createdFrom.toISOString());
  if (filter.createdTo) params.set("to", filter.createdTo.toISOString());
  if (filter.payload !== undefined) params.set("payload", JSON.stringify(filter.payload));
  return `http://dashboard.bench/jobs/?${params.toString()}`;
}

/** The median ms of `runs` loads of the jobs page (after 3 warm-up loads). */
async function timePage(filter: FindJobsFilter): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const started = performance.now();
    const response = await dashboard.fetch(
      new Request(pageUrl(filter), { headers: { authorization: `Bearer ${token}` } }),
    );
    const body = await response.text();
    if (response.status !== 200 || !body.includes('<table class="jobs">')) {
      throw new Error(`the jobs page answered ${response.status} for ${pageUrl(filter)}`);
    }
    if (i >= 3) times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1] ?? 0;
}

const results: {
  name: string;
  median: number;
  pageMedian: number;
  found: number;
  next: string;
  plan: string;
}[] = [];
for (const c of cases) {
  const filter = typeof c.filter === "function" ? await c.filter() : c.filter;
  const times: number[] = [];
  let page: JobPage | undefined;
  for (let i = 0; i < runs + 3; i++) {
    const started = performance.now();
    page = await rota.findJobs(filter);
    if (i >= 3) times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  results.push({
    name: c.name,
    median: times[times.length >> 1] ?? 0,
    pageMedian: await timePage(filter),
    found: page?.jobs.length ?? 0,
    // What `next` is: none, the page's last job, or where a payload search stopped.
    next: !page?.next ? "null" : page.next === page.jobs.at(-1)?.id ? "last job" : "scan end",
    plan: await explain(filter),
  });
}

const server = (await db.pool.query("show server_version")).rows[0].server_version;
console.log(
  `findJobs on ${rows.toLocaleString("en")} jobs (loaded and vacuum analyzed in ${(loadedMs / 1000).toFixed(1)} s), PostgreSQL ${server}, median of ${runs} calls`,
);
console.log(`states: ${counts.rows.map((r) => `${r.state} ${r.n}`).join(", ")}\n`);
const width = Math.max(...results.map((r) => r.name.length));
console.log(`${"case".padEnd(width)}  median ms  page ms  jobs  next      plan`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(width)}  ${r.median.toFixed(2).padStart(9)}  ${r.pageMedian.toFixed(2).padStart(7)}  ${String(r.found).padStart(4)}  ${r.next.padEnd(8)}  ${r.plan}`,
  );
}
const slowest = results.reduce((a, b) => (b.pageMedian > a.pageMedian ? b : a));
console.log(
  `\nslowest page: ${slowest.name}, ${slowest.pageMedian.toFixed(1)} ms (the target is under 200 ms)`,
);

await db.pool.query(`drop schema ${pg.escapeIdentifier(schema)} cascade`);
await rota.close();
