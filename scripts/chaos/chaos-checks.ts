/**
 * What a chaos run checks once everything has drained, from the side table
 * (what the handlers say ran, chaos.runs), the ledger (what the run knows it
 * enqueued, chaos.enqueued and chaos.batches), the captured user table, and
 * rota's own tables, read behind its back:
 *
 * - jobs: every job in the ledger ended succeeded (deleted on success, with a
 *   run that returned) or failed for good; none is still queued or running,
 *   none vanished; and no job the run did not commit (its transaction rolled
 *   back) ever ran;
 * - reruns: a run followed by another of the same job (other than an attempt
 *   that failed on purpose) is explained by a fault: its process was killed
 *   after it started, or the database restarted or its connections were
 *   terminated between (a lease before) its start and the next run's start;
 * - schedules: no occurrence became two jobs; for catch-up "all" every
 *   occurrence in the chaos span ran; for "latest" every one has an
 *   execution that ran, was skipped for overlap or was missed per the policy;
 *   none is left unfinished;
 * - limits: never more runs of the limited queue, of a key, or of a schedule
 *   with overlap "skip" or "queue" at once than allowed, from the runs'
 *   intervals (a killed run's slot counted until its lease ran out, see
 *   checkLimits);
 * - batches: each callback ran from exactly one job, with the right counts;
 * - capture: each row's last version was processed by a job that ran;
 * - processes: none crashed, none failed to stop, none spun while the
 *   database was away or when idle.
 */
import type pg from "pg";
import type { CpuSample, KillRecord } from "./chaos-faults.js";
import { BUSY_SHARE } from "./chaos-faults.js";
import type { ServerFault } from "./chaos-server.js";
import { KEY_LIMITS, QUEUE_LIMIT, SCHEDULES } from "./chaos-setup.js";
import { logTail, type RotaProcess, WORKER_LEASE_MS } from "./rota-processes.js";
import { concurrency, type Interval, meets } from "./run-intervals.js";

export interface CheckInput {
  client: pg.ClientBase;
  /** When the faults began and when they (and the load) stopped, by this machine's clock. */
  chaosStart: number;
  chaosEnd: number;
  processes: readonly RotaProcess[];
  crashes: readonly RotaProcess[];
  stuckAtStop: readonly RotaProcess[];
  kills: readonly KillRecord[];
  serverFaults: readonly ServerFault[];
  cpu: readonly CpuSample[];
}

interface Run {
  run_id: string;
  job_id: string;
  attempt: number;
  task: string;
  queue: string;
  schedule_id: string | null;
  occurrence_at: Date | null;
  target_key: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: payloads of every task
  payload: any;
  pid: number;
  started_at: Date;
  ended_at: Date | null;
  outcome: string | null;
}

export interface ChaosChecks {
  violations: string[];
  jobs: {
    enqueued: number;
    byKind: Record<string, number>;
    completed: number;
    failedForGood: number;
    lost: number;
    stuck: number;
    missing: number;
    ambiguousEnqueues: number;
    ambiguousThatRan: number;
    /** Jobs that ran though the run never committed them (a rolled-back transaction's). */
    phantom: number;
  };
  runs: { total: number; unfinished: number };
  reruns: {
    total: number;
    explainedByKill: number;
    explainedByRestart: number;
    explainedByTerminate: number;
    unexplained: number;
  };
  schedules: {
    occurrences: number;
    ran: number;
    firedTwice: number;
    missing: number;
    stuck: number;
    skippedForOverlap: number;
    missedPerPolicy: number;
  };
  limits: { violations: number; checked: Record<string, { limit: number; max: number }> };
  batches: {
    enqueued: number;
    callbackOnce: number;
    callbackTwice: number;
    callbackNever: number;
    wrongCounts: number;
  };
  capture: { rows: number; unprocessed: number; jobsRan: number };
  processes: {
    started: number;
    crashed: number;
    stuckAtStop: number;
    busyLoops: number;
    maxCpuShare: Record<string, number>;
  };
}

export async function check(input: CheckInput): Promise<ChaosChecks> {
  const { client } = input;
  const violations: string[] = [];
  const runs = (
    await client.query<Run>(
      `select run_id, job_id::text, attempt, task, queue, schedule_id::text, occurrence_at,
              target_key, payload, pid, started_at, ended_at, outcome
       from chaos.runs order by started_at`,
    )
  ).rows;
  const runsByJob = groupBy(runs, (r) => r.job_id);
  const killedAt = killTimes(input.processes);

  const jobs = await checkJobs(client, runsByJob, violations);
  const rerunSection = checkReruns(runsByJob, killedAt, input.serverFaults, violations);
  const unfinished = runs.filter((r) => r.ended_at === null && killedAt(r) === undefined);
  for (const r of unfinished.slice(0, 5)) {
    violations.push(
      `run of job ${r.job_id} (attempt ${r.attempt}, pid ${r.pid}) never ended, and its process was not killed`,
    );
  }
  const scheduleSection = await checkSchedules(input, runs, violations);
  const limits = checkLimits(runs, killedAt, scheduleSection.ids, violations);
  const batches = await checkBatches(client, runs, violations);
  const capture = await checkCapture(client, runs, violations);
  const processes = checkProcesses(input, violations);
  return {
    violations,
    jobs,
    runs: { total: runs.length, unfinished: unfinished.length },
    reruns: rerunSection,
    schedules: scheduleSection.summary,
    limits,
    batches,
    capture,
    processes,
  };
}

/** When the process that made a run was killed, if it was. */
type KillTime = (run: Run) => number | undefined;

/**
 * Runs name their process by pid, and pids come round again (kernel.pid_max
 * may be as low as 32,768): a run belongs to the process of its pid that was
 * alive when it started.
 */
function killTimes(processes: readonly RotaProcess[]): KillTime {
  const byPid = groupBy(
    processes.filter((p) => p.killedAt !== null),
    (p) => String(p.pid),
  );
  return (run) => {
    const at = run.started_at.getTime();
    const owner = byPid
      .get(String(run.pid))
      ?.find((p) => p.startedAt <= at && at <= (p.exitedAt ?? Number.POSITIVE_INFINITY));
    return owner?.killedAt ?? undefined;
  };
}

/** Every job in the ledger: how it ended. */
async function checkJobs(
  client: pg.ClientBase,
  runsByJob: Map<string, Run[]>,
  violations: string[],
): Promise<ChaosChecks["jobs"]> {
  const ledger = (
    await client.query<{
      job_id: string;
      kind: string;
      state: string | null;
      attempts: number | null;
      max_attempts: number | null;
    }>(
      `select e.job_id::text, e.kind, j.state, j.attempts, j.max_attempts
       from chaos.enqueued as e left join rota.jobs as j on j.id = e.job_id`,
    )
  ).rows;
  const section: ChaosChecks["jobs"] = {
    enqueued: ledger.length,
    byKind: {},
    completed: 0,
    failedForGood: 0,
    lost: 0,
    stuck: 0,
    missing: 0,
    ambiguousEnqueues: 0,
    ambiguousThatRan: 0,
    phantom: 0,
  };
  for (const job of ledger) {
    section.byKind[job.kind] = (section.byKind[job.kind] ?? 0) + 1;
    const ranOk = (runsByJob.get(job.job_id) ?? []).some((r) => r.outcome === "ok");
    if (job.state === null) {
      // Deleted: only a success deletes a plain job, and its handler returned.
      if (ranOk) section.completed++;
      else {
        section.missing++;
        if (section.missing <= 5)
          violations.push(`job ${job.job_id} (${job.kind}) is gone without a run that returned`);
      }
    } else if (job.state === "succeeded") {
      section.completed++;
    } else if (job.state === "failed" && (job.attempts ?? 0) >= (job.max_attempts ?? 0)) {
      section.failedForGood++;
    } else {
      section.stuck++;
      if (section.stuck <= 5) {
        violations.push(
          `job ${job.job_id} (${job.kind}) is still ${job.state} (attempt ${job.attempts} of ${job.max_attempts}) after the drain`,
        );
      }
    }
  }
  section.lost = section.missing + section.stuck;
  if (section.missing > 5)
    violations.push(`… and ${section.missing - 5} more jobs gone without a run`);
  if (section.stuck > 5) violations.push(`… and ${section.stuck - 5} more jobs not finished`);
  const ambiguous = (
    await client.query<{ total: number; ran: number }>(
      `select count(*)::int as total,
              count(*) filter (where exists (
                select 1 from chaos.runs as r where r.payload->>'token' = a.token))::int as ran
       from chaos.ambiguous as a`,
    )
  ).rows[0];
  section.ambiguousEnqueues = ambiguous?.total ?? 0;
  section.ambiguousThatRan = ambiguous?.ran ?? 0;
  // A job of the load that ran, neither in the ledger nor among the
  // unanswered enqueues: its transaction rolled back (the ledger rows went
  // with it), yet it existed.
  const phantoms = (
    await client.query<{ job_id: string; task: string }>(
      `select distinct r.job_id::text, r.task from chaos.runs as r
       where r.task in ('chaos.job', 'chaos.limited', 'chaos.keyed')
         and not exists (select 1 from chaos.enqueued as e where e.job_id = r.job_id)
         and not exists (select 1 from chaos.ambiguous as a where a.token = r.payload->>'token')`,
    )
  ).rows;
  section.phantom = phantoms.length;
  for (const p of phantoms.slice(0, 5)) {
    violations.push(`job ${p.job_id} (${p.task}) ran, but the run never committed it`);
  }
  return section;
}

/**
 * A run followed by another run of its job, when it did not fail on purpose,
 * was run again: by a kill of its process after it started (and before the
 * next run began), or by a database fault from a lease before its start to
 * the next run's start (its heartbeat or its outcome's write lost). Restarts
 * and terminations are counted apart: with the workers' lease longer than a
 * restart's downtime, a termination alone (the next heartbeat or write
 * succeeds on a new connection) should explain none.
 */
function checkReruns(
  runsByJob: Map<string, Run[]>,
  killedAt: KillTime,
  serverFaults: readonly ServerFault[],
  violations: string[],
): ChaosChecks["reruns"] {
  const section = {
    total: 0,
    explainedByKill: 0,
    explainedByRestart: 0,
    explainedByTerminate: 0,
    unexplained: 0,
  };
  const restarts = serverFaults.filter((f) => f.kind === "restart");
  const terminates = serverFaults.filter((f) => f.kind === "terminate");
  for (const [jobId, jobRuns] of runsByJob) {
    const ordered = [...jobRuns].sort(
      (a, b) => a.attempt - b.attempt || a.started_at.getTime() - b.started_at.getTime(),
    );
    for (let i = 0; i + 1 < ordered.length; i++) {
      const run = ordered[i] as Run;
      const next = ordered[i + 1] as Run;
      if (run.outcome === "planned-failure") continue;
      section.total++;
      const from = run.started_at.getTime();
      const to = next.started_at.getTime();
      const kill = killedAt(run);
      if (kill !== undefined && kill >= from && kill <= to) section.explainedByKill++;
      else if (meets(from - WORKER_LEASE_MS, to, restarts)) section.explainedByRestart++;
      else if (meets(from - WORKER_LEASE_MS, to, terminates)) section.explainedByTerminate++;
      else {
        section.unexplained++;
        if (section.unexplained <= 5) {
          violations.push(
            `job ${jobId} ran again (attempt ${run.attempt} by pid ${run.pid}, outcome ${run.outcome ?? "none"}, then attempt ${next.attempt} by pid ${next.pid}) with no kill or database fault to explain it`,
          );
        }
      }
    }
  }
  if (section.unexplained > 5)
    violations.push(`… and ${section.unexplained - 5} more unexplained reruns`);
  return section;
}

interface ExecutionRow {
  schedule_id: string;
  target_key: string | null;
  occurrence_at: Date;
  run_at: Date;
  state: string;
}

/** Fired twice, missing, unfinished: per schedule, over the chaos span. */
async function checkSchedules(
  input: CheckInput,
  runs: Run[],
  violations: string[],
): Promise<{ summary: ChaosChecks["schedules"]; ids: Map<string, string> }> {
  const { client, chaosStart, chaosEnd } = input;
  const ids = new Map(
    (
      await client.query<{ id: string; name: string }>("select id::text, name from rota.schedules")
    ).rows.map((r) => [r.name, r.id]),
  );
  const executions = (
    await client.query<ExecutionRow>(
      `select schedule_id::text, target_key, occurrence_at, run_at, state from rota.jobs
       where schedule_id is not null and occurrence_at is not null and state <> 'superseded'`,
    )
  ).rows;
  const summary: ChaosChecks["schedules"] = {
    occurrences: 0,
    ran: 0,
    firedTwice: 0,
    missing: 0,
    stuck: 0,
    skippedForOverlap: 0,
    missedPerPolicy: 0,
  };
  const key = (scheduleId: string, target: string | null, at: Date) =>
    `${scheduleId}/${target ?? ""}/${at.getTime()}`;
  // Twice: two live execution rows for one occurrence, or runs of two jobs.
  const twice = new Set<string>();
  for (const [k, rows] of groupBy(executions, (e) =>
    key(e.schedule_id, e.target_key, e.occurrence_at),
  )) {
    if (rows.length > 1) twice.add(k);
  }
  const scheduleRuns = runs.filter((r) => r.schedule_id !== null && r.occurrence_at !== null);
  const runsByOccurrence = groupBy(scheduleRuns, (r) =>
    key(r.schedule_id as string, r.target_key, r.occurrence_at as Date),
  );
  for (const [k, rows] of runsByOccurrence) {
    if (new Set(rows.map((r) => r.job_id)).size > 1) twice.add(k);
  }
  summary.firedTwice = twice.size;
  for (const k of [...twice].slice(0, 5))
    violations.push(`schedule occurrence ${k} fired as two jobs`);
  const byOccurrence = new Map(
    executions.map((e) => [key(e.schedule_id, e.target_key, e.occurrence_at), e]),
  );
  for (const schedule of SCHEDULES) {
    const id = ids.get(schedule.name);
    if (id === undefined) {
      violations.push(`schedule ${schedule.name} is missing`);
      continue;
    }
    const periodMs = schedule.periodS * 1000;
    const windowMs = (schedule.windowS ?? 0) * 1000;
    // The grid points from the first at or after the chaos began to the last
    // whose runs (the window's included) were due before it ended.
    const first = Math.ceil(chaosStart / periodMs) * periodMs;
    for (let at = first; at + windowMs <= chaosEnd; at += periodMs) {
      for (const target of schedule.targets ?? [null]) {
        summary.occurrences++;
        const k = key(id, target, new Date(at));
        const execution = byOccurrence.get(k);
        const ran = (runsByOccurrence.get(k) ?? []).some((r) => r.outcome === "ok");
        if (ran) summary.ran++;
        const name = `${schedule.name}${target ? ` ${target}` : ""} at ${new Date(at).toISOString()}`;
        if (execution && ["scheduled", "available", "running"].includes(execution.state)) {
          summary.stuck++;
          if (summary.stuck <= 5)
            violations.push(`execution of ${name} is still ${execution.state} after the drain`);
          continue;
        }
        if (schedule.catchUp === "all") {
          if (!ran) {
            summary.missing++;
            if (summary.missing <= 5) {
              violations.push(
                `${name} (catch-up all) never ran (execution ${execution ? execution.state : "not found"})`,
              );
            }
          }
          continue;
        }
        // Catch-up "latest", overlap "skip": it ran, was skipped while the
        // previous one ran, or was missed after a downtime; but it exists.
        if (execution === undefined) {
          summary.missing++;
          if (summary.missing <= 5) violations.push(`${name} has no execution`);
        } else if (execution.state === "skipped") summary.skippedForOverlap++;
        else if (execution.state === "missed") summary.missedPerPolicy++;
        else if (!ran) {
          summary.missing++;
          if (summary.missing <= 5)
            violations.push(`${name} is ${execution.state} but no run of it returned`);
        }
      }
    }
  }
  // Beyond the span: nothing due before the chaos ended may be left unfinished.
  for (const e of executions) {
    if (
      e.run_at.getTime() <= chaosEnd &&
      e.occurrence_at.getTime() < chaosStart &&
      ["scheduled", "available", "running"].includes(e.state)
    ) {
      summary.stuck++;
      if (summary.stuck <= 5)
        violations.push(
          `execution of schedule ${e.schedule_id} at ${e.occurrence_at.toISOString()} is still ${e.state}`,
        );
    }
  }
  return { summary, ids };
}

/**
 * The limits, from the runs' intervals. A run ends when its handler said so.
 * A run whose process was killed first ended there, but rota counts it
 * against its limits until a rescue, after its lease ran out; for the
 * limited queue and the keys, whose jobs start when they are claimed (never
 * from a worker's buffer), that is no sooner than a lease after it started
 * (less two seconds for the claim's own time before the handler began), so the
 * interval runs to then: a slot given away before the lease ran out shows
 * as one run too many. (A schedule's execution may wait in a buffer before
 * it starts: its killed run ends at the kill.) A run with neither an end nor
 * a kill is taken to run on to the end.
 */
function checkLimits(
  runs: Run[],
  killedAt: KillTime,
  scheduleIds: Map<string, string>,
  violations: string[],
): ChaosChecks["limits"] {
  const intervalOf =
    (heldForLease: boolean) =>
    (r: Run): Interval => {
      const from = r.started_at.getTime();
      if (r.ended_at !== null) return { from, to: r.ended_at.getTime() };
      const kill = killedAt(r);
      if (kill === undefined) return { from, to: Number.MAX_SAFE_INTEGER };
      return {
        from,
        to: heldForLease ? Math.max(kill, from + WORKER_LEASE_MS - CLAIM_SLACK_MS) : kill,
      };
    };
  const groups: { name: string; limit: number; runs: Run[]; heldForLease: boolean }[] = [
    {
      name: `queue ${QUEUE_LIMIT.queue}`,
      limit: QUEUE_LIMIT.limit,
      runs: runs.filter((r) => r.queue === QUEUE_LIMIT.queue),
      heldForLease: true,
    },
    ...Object.entries(KEY_LIMITS).map(([key, limit]) => ({
      name: `key ${key}`,
      limit,
      runs: runs.filter((r) => r.queue === "keyed" && r.payload?.key === key),
      heldForLease: true,
    })),
    ...SCHEDULES.filter((s) => s.overlap !== "allow").map((s) => ({
      name: `schedule ${s.name} (overlap ${s.overlap})`,
      limit: 1,
      runs: runs.filter((r) => r.schedule_id === scheduleIds.get(s.name)),
      heldForLease: false,
    })),
  ];
  const section: ChaosChecks["limits"] = { violations: 0, checked: {} };
  for (const group of groups) {
    const seen = concurrency(group.runs.map(intervalOf(group.heldForLease)), group.limit);
    section.checked[group.name] = { limit: group.limit, max: seen.max };
    if (seen.over > 0) {
      section.violations += seen.over;
      violations.push(
        `${group.name}: ${seen.max} ran at once (limit ${group.limit}), first at ${new Date(seen.firstOverAt as number).toISOString()}`,
      );
    }
  }
  return section;
}

/** The most a claim may precede its handler's start, for a job started at its claim. */
const CLAIM_SLACK_MS = 2_000;

/** Each batch's callback: enqueued and run exactly once, with the counts. */
async function checkBatches(
  client: pg.ClientBase,
  runs: Run[],
  violations: string[],
): Promise<ChaosChecks["batches"]> {
  const batches = (
    await client.query<{
      batch_id: string;
      members: number;
      total: number | null;
      succeeded: number | null;
      failed: number | null;
      cancelled: number | null;
      finished: boolean | null;
      completed: number;
    }>(
      `select b.batch_id::text, b.members, r.total, r.succeeded, r.failed, r.cancelled,
              r.finished_at is not null as finished,
              (select count(*)::int from chaos.enqueued as e
               where e.batch_id = b.batch_id
                 and not exists (select 1 from rota.jobs as j where j.id = e.job_id)) as completed
       from chaos.batches as b left join rota.batches as r on r.id = b.batch_id`,
    )
  ).rows;
  const callbacks = groupBy(
    runs.filter((r) => r.task === "chaos.batch-done" && r.outcome === "ok"),
    (r) => String(r.payload?.batch),
  );
  const section = {
    enqueued: batches.length,
    callbackOnce: 0,
    callbackTwice: 0,
    callbackNever: 0,
    wrongCounts: 0,
  };
  for (const batch of batches) {
    const jobs = new Set((callbacks.get(batch.batch_id) ?? []).map((r) => r.job_id));
    if (jobs.size === 1) section.callbackOnce++;
    else if (jobs.size === 0) {
      section.callbackNever++;
      if (section.callbackNever <= 5)
        violations.push(
          `batch ${batch.batch_id}: its callback never ran (finished: ${batch.finished})`,
        );
    } else {
      section.callbackTwice++;
      violations.push(
        `batch ${batch.batch_id}: its callback ran as ${jobs.size} jobs (${[...jobs].join(", ")})`,
      );
    }
    // Every member counted once: those that succeeded (deleted) as succeeded.
    if (batch.total !== batch.members || batch.succeeded !== batch.completed) {
      section.wrongCounts++;
      violations.push(
        `batch ${batch.batch_id}: counts total ${batch.total} succeeded ${batch.succeeded} failed ${batch.failed} cancelled ${batch.cancelled}, expected total ${batch.members} succeeded ${batch.completed}`,
      );
    }
  }
  return section;
}

/** Each captured row's last version reached a job that ran to its end. */
async function checkCapture(
  client: pg.ClientBase,
  runs: Run[],
  violations: string[],
): Promise<ChaosChecks["capture"]> {
  const items = (
    await client.query<{ id: number; version: string }>(
      "select id, version::text from chaos.items order by id",
    )
  ).rows;
  const processed = new Set(
    runs
      .filter((r) => r.task === "chaos.capture" && r.outcome === "ok")
      .map((r) => `${r.payload?.key?.id}/${r.payload?.row?.version}`),
  );
  const captureJobs = new Set(runs.filter((r) => r.task === "chaos.capture").map((r) => r.job_id));
  let unprocessed = 0;
  for (const item of items) {
    if (processed.has(`${item.id}/${item.version}`)) continue;
    unprocessed++;
    if (unprocessed <= 5)
      violations.push(
        `captured row ${item.id}: its last change (version ${item.version}) was never processed`,
      );
  }
  return { rows: items.length, unprocessed, jobsRan: captureJobs.size };
}

function checkProcesses(input: CheckInput, violations: string[]): ChaosChecks["processes"] {
  for (const p of input.crashes) {
    violations.push(
      `${p.kind} ${p.pid} exited on its own (code ${p.exit?.code}, signal ${p.exit?.signal}): ${logTail(p)}`,
    );
  }
  for (const p of input.stuckAtStop)
    violations.push(`${p.kind} ${p.pid} did not stop on SIGTERM: ${logTail(p)}`);
  const busy = input.cpu.filter((s) => s.share > BUSY_SHARE);
  for (const s of busy) {
    violations.push(
      `${s.kind} ${s.pid} used ${Math.round(s.share * 100)}% of a core over ${s.windowMs} ms (${s.during})`,
    );
  }
  const maxCpuShare: Record<string, number> = {};
  for (const s of input.cpu) {
    const name = `${s.kind} (${s.during})`;
    maxCpuShare[name] = Math.max(maxCpuShare[name] ?? 0, Math.round(s.share * 100) / 100);
  }
  return {
    started: input.processes.length,
    crashed: input.crashes.length,
    stuckAtStop: input.stuckAtStop.length,
    busyLoops: busy.length,
    maxCpuShare,
  };
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}
