import { fileURLToPath } from "node:url";
import { type BenchChild, startBenchChild } from "../child-process.js";
import type { ChildArguments, ChildMessage, ParentMessage } from "../child-protocol.js";
import type { Measurement } from "../results.js";
import { maxOverlap } from "../stats.js";
import type { BenchSystem } from "../systems/types.js";
import { nowMs, withDeadline, withTimeout } from "../time.js";
import { payloads, stopWorker, type WorkloadContext } from "./context.js";

const PRE_INSERT_CHUNK = 5_000;
const CHILD = fileURLToPath(new URL("../worker-child.ts", import.meta.url));

/** Inserts the jobs to process (not timed), in chunks through the bulk API. */
async function preInsert(system: BenchSystem, jobs: number): Promise<void> {
  for (let from = 0; from < jobs; from += PRE_INSERT_CHUNK) {
    await system.enqueueBulk(payloads(Math.min(PRE_INSERT_CHUNK, jobs - from), from));
  }
}

/**
 * process_1proc: the jobs are inserted first; then one worker with the
 * workload's concurrency starts, and the clock runs from just before it starts
 * until the last job's handler starts. Handlers are no-ops.
 */
export async function processOneProcess(
  system: BenchSystem,
  context: WorkloadContext,
): Promise<Measurement> {
  const { jobs, concurrency, processTimeout } = context.options;
  await preInsert(system, jobs);
  let count = 0;
  let lastAt = 0;
  let allStarted = () => {};
  const done = new Promise<void>((resolve) => {
    allStarted = resolve;
  });
  const start = nowMs();
  const worker = await system.startWorker({
    concurrency,
    onJob: () => {
      count++;
      lastAt = nowMs();
      if (count === jobs) allStarted();
    },
  });
  const outcome = await withTimeout(done, processTimeout * 1000);
  const end = outcome === "timeout" ? nowMs() : lastAt;
  await stopWorker(worker, context, `${system.system}/${system.config} process_1proc`);
  return rate(count, jobs, start, end);
}

/** `started` of `jobs` handlers started between `start` and `end` (ms): complete when all did. */
function rate(started: number, jobs: number, start: number, end: number): Measurement {
  const processed = Math.min(started, jobs);
  const seconds = (end - start) / 1000;
  return {
    jobs_per_s: processed / seconds,
    jobs: processed,
    seconds,
    complete: processed === jobs,
  };
}

/**
 * process_2proc: as process_1proc, with two worker processes (each with the
 * workload's concurrency) that report their handler counts to this one. The
 * clock runs from the "start" message until the last job's handler starts in
 * either child (children stamp their counts with a wall clock comparable
 * across processes).
 */
export async function processTwoProcesses(
  system: BenchSystem,
  context: WorkloadContext,
): Promise<Measurement> {
  return (await inTwoProcesses(system, context, "process_2proc")).measurement;
}

/** process_limited's queue limit: at most this many of its jobs run at once across both workers. */
const LIMIT = 5;

/**
 * How long each process_limited handler takes (an awaited sleep): long
 * enough that a handler is still running while the other slots are claimed,
 * so the limit, not the claim, bounds how many run at once.
 */
const HANDLER_MS = 1;
/** process_limited's cap on its processing (or --process-timeout, if longer). */
const LIMITED_TIMEOUT_S = 60;

/**
 * process_limited (rota only): as process_2proc, on a queue limited to 5
 * running jobs across both worker processes (set before the jobs are
 * inserted), whose handlers each sleep 1 ms. Besides the rate, the most
 * handlers running at once: a sweep over every handler's start and end in
 * both children (an end before a start at the same time). A handler runs
 * within its job's running time in the database, so more than the limit
 * there means the limit was passed: the row says so, with a note.
 */
export async function processLimited(
  system: BenchSystem,
  context: WorkloadContext,
): Promise<Measurement> {
  if (!system.setQueueLimit) throw new Error(`${system.system} has no queue concurrency limit`);
  await system.setQueueLimit(LIMIT);
  const { measurement, children } = await inTwoProcesses(
    system,
    context,
    "process_limited",
    HANDLER_MS,
    // The limit, not the claim, bounds this rate (about 1,300-1,600 jobs/s
    // here: 20,000 jobs take 13-16 s), so the usual cap would cut it short.
    Math.max(context.options.processTimeout, LIMITED_TIMEOUT_S),
  );
  const starts: number[] = [];
  const ends: number[] = [];
  for (const child of children) {
    if (!child.handlers) throw new Error("a worker child did not send its handlers' times");
    starts.push(...child.handlers.starts);
    ends.push(...child.handlers.ends);
  }
  const max = maxOverlap(starts, ends);
  if (max > LIMIT) {
    context.warn(
      `${system.system}/${system.config} process_limited: LIMIT EXCEEDED, ${max} handlers ran at once across the two workers (limit ${LIMIT})`,
    );
  }
  return {
    ...measurement,
    max_concurrency: max,
    concurrency_limit: LIMIT,
    limit_exceeded: max > LIMIT,
  };
}

/**
 * Two worker processes through the jobs (process_2proc, process_limited with
 * `handlerMs`): the rate, and the children, stopped (with the handlers' times
 * they sent).
 */
async function inTwoProcesses(
  system: BenchSystem,
  context: WorkloadContext,
  workload: "process_2proc" | "process_limited",
  handlerMs?: number,
  timeoutS = context.options.processTimeout,
): Promise<{ measurement: Measurement; children: Child[] }> {
  const { jobs, concurrency } = context.options;
  const args: ChildArguments = {
    system: system.system,
    config: system.config,
    env: context.env,
    concurrency,
    ...(handlerMs === undefined ? {} : { handlerMs }),
  };
  // The children start (and attach) while the jobs are inserted; only processing is timed.
  const spawned = nowMs();
  const children = [startChild(args), startChild(args)];
  const failed = Promise.race(children.map((child) => child.failed));
  failed.catch(() => {});
  try {
    await preInsert(system, jobs);
    await withDeadline(
      Promise.race([Promise.all(children.map((child) => child.ready)), failed]),
      60_000,
      "worker children did not get ready within 60 s",
    );
    let allStarted = () => {};
    const done = new Promise<void>((resolve) => {
      allStarted = resolve;
    });
    const total = () => children.reduce((sum, child) => sum + child.count, 0);
    for (const child of children) {
      child.onCount = () => {
        if (total() >= jobs) allStarted();
      };
    }
    const start = nowMs();
    context.log(`${workload}: children ready in ${((start - spawned) / 1000).toFixed(1)} s`);
    for (const child of children) child.send({ type: "start" });
    const outcome = await withTimeout(Promise.race([done, failed]), timeoutS * 1000);
    const end =
      outcome === "timeout" ? nowMs() : Math.max(...children.map((child) => child.lastAt));
    return { measurement: rate(total(), jobs, start, end), children };
  } finally {
    const stopping = nowMs();
    await Promise.all(children.map((child) => child.stop()));
    context.log(`${workload}: children stopped in ${((nowMs() - stopping) / 1000).toFixed(1)} s`);
  }
}

interface Child extends BenchChild<ParentMessage> {
  count: number;
  lastAt: number;
  /** What it sent as it stopped, with `handlerMs`. */
  handlers?: { starts: number[]; ends: number[] };
  onCount: () => void;
}

function startChild(args: ChildArguments): Child {
  const counts: Pick<Child, "count" | "lastAt" | "handlers" | "onCount"> = {
    count: 0,
    lastAt: 0,
    onCount: () => {},
  };
  const child = startBenchChild<ParentMessage, ChildMessage>(
    CHILD,
    args,
    "worker child",
    (message) => {
      if (message.type === "count") {
        counts.count = message.count;
        counts.lastAt = message.lastAt;
        counts.onCount();
      } else if (message.type === "handlers") {
        counts.handlers = { starts: message.starts, ends: message.ends };
      }
    },
  );
  return Object.assign(counts, child);
}
