// The tasks of the chaos run (scripts/chaos/run.ts), run by real `rota
// worker --tasks <this file>` processes. Every handler records its run in
// chaos.runs, the side table the run's checks read: the job, its attempt,
// task, queue, schedule, occurrence and target, the payload, this process's
// pid, and when the handler started and ended.
//
// Why the handler's own clock for started_at and ended_at, not the database's:
// the database restarts during the run, and a handler whose write waits for
// it to come back must still say when it really ran (the concurrency checks
// compare these intervals with each other and with the times the run killed
// processes, all on this one machine's clock).
//
// Why its own pool, named "chaos side table": the run terminates the
// connections whose application_name starts with "rota"; the record of what
// ran is not what is under test. Each write is its own statement (its own
// transaction), retried while the database is away, and safe to repeat: the
// run id is drawn here, so a start written twice (a commit whose reply was
// lost) is one row.
import { randomUUID } from "node:crypto";
import pg from "pg";

const pool = new pg.Pool({
  connectionString: process.env.CHAOS_SIDE_URL,
  max: 4,
  application_name: "chaos side table",
});
// An idle client dropped by a database restart must not end the process.
pool.on("error", () => {});

/** How long a side-table write is retried before the handler gives up (and throws). */
const WRITE_RETRY_MS = 120_000;

async function write(text, values) {
  const giveUpAt = Date.now() + WRITE_RETRY_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await pool.query(text, values);
    } catch (error) {
      if (Date.now() > giveUpAt) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 25 * 2 ** attempt)));
    }
  }
}

/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
function work(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** How long this run works: payload.ms, or payload.longMs on every payload.longEvery-th occurrence. */
function durationOf(payload, job) {
  const ms = payload?.ms ?? 0;
  if (payload?.longEvery && job.occurrenceAt) {
    const second = Math.floor(job.occurrenceAt.getTime() / 1000);
    if (second % payload.longEvery === 0) return payload.longMs;
  }
  return ms;
}

/**
 * One run: recorded at its start, works for its duration (stopping early if
 * the worker aborts it), recorded at its end with its outcome, and fails
 * on purpose while ctx.attempt <= payload.failUntil.
 */
async function run(payload, ctx) {
  const runId = randomUUID();
  const startedAt = new Date();
  const job = ctx.job;
  await write(
    `insert into chaos.runs (run_id, job_id, attempt, task, queue, schedule_id, occurrence_at,
       target_key, payload, pid, started_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (run_id) do nothing`,
    [
      runId,
      job.id,
      ctx.attempt,
      job.task,
      job.queue,
      job.scheduleId,
      job.occurrenceAt,
      job.targetKey,
      JSON.stringify(payload ?? null),
      process.pid,
      startedAt,
    ],
  );
  let outcome = "ok";
  try {
    await work(durationOf(payload, job), ctx.signal);
  } catch (reason) {
    outcome = `aborted:${reason?.code ?? "unknown"}`;
  }
  if (outcome === "ok" && ctx.attempt <= (payload?.failUntil ?? 0)) outcome = "planned-failure";
  await write("update chaos.runs set ended_at = $2, outcome = $3 where run_id = $1", [
    runId,
    new Date(),
    outcome,
  ]);
  if (outcome !== "ok") throw new Error(`chaos: ${outcome} on attempt ${ctx.attempt}`);
}

const task = (name, queue) => ({ name, queue, handler: run });

export default [
  // Plain, delayed and retrying jobs (payload.failUntil), and batch members.
  task("chaos.job", "plain"),
  // The queue with a global limit (rota.queues.setLimit).
  task("chaos.limited", "limited"),
  // Jobs with a concurrency key and a per-key limit.
  task("chaos.keyed", "keyed"),
  // Every schedule's executions, the fanned-out one's included.
  task("chaos.tick", "sched"),
  // Change capture of chaos.items (payload: { capture, op, key, row }).
  task("chaos.capture", "capture"),
  // A batch's fan-in callback (payload: { batch, succeeded, failed, … }).
  task("chaos.batch-done", "batch"),
];
