import { RotaError } from "../errors.js";
import { childLogger, type Logger } from "../logger.js";
import type { BatchContext, BatchJob, BatchOutcome, BatchTaskDefinition } from "../task.js";
import type { ProcessSpan } from "../telemetry/telemetry.js";
import {
  type Attempt,
  type AttemptEnvironment,
  type Outcome,
  SUCCEEDED,
  settleSpan,
  startTimeout,
  validateLeaseExtension,
} from "./attempt.js";

/**
 * One call of a batch task's handler with the attempts of up to
 * `batch.size` jobs; each attempt's outcome is handed over on its own.
 *
 * - A job whose payload fails the task's schema is refused alone, before
 *   the call (no retry), and the others go on without it.
 * - The handler returns nothing (all succeeded), or one BatchOutcome per job
 *   in the order given; any other return fails every job of the call, and
 *   so does a throw.
 * - The timeout is the smallest of the jobs' (theirs or the task's) and
 *   covers the whole call: on it every job is recorded timed out at once,
 *   and the slot stays taken until the handler returns (as for one job).
 * - Each job keeps its own signal (cancelled, lease lost); the context's
 *   signal aborts once every job's has.
 */
export async function runBatch(
  attempts: readonly Attempt[],
  task: BatchTaskDefinition,
  env: AttemptEnvironment,
): Promise<void> {
  const started = performance.now();
  // One span for the call, with a link per job (its refused payloads too).
  const span =
    env.telemetry === null
      ? null
      : env.telemetry.process(
          attempts.map((a) => a.row),
          env.workerId,
          true,
        );
  const settle = (attempt: Attempt, outcome: Outcome) => {
    env.settle(attempt, outcome, performance.now() - started);
    if (span !== null) settleSpan(span, attempt.row, outcome);
  };
  try {
    await runCall(attempts, task, env, settle, span);
  } finally {
    // Every payload refused, or the call's setup threw: no outcome ended it.
    span?.end();
  }
}

/** runBatch's call: the payloads checked, the handler called, each job's outcome handed over. */
async function runCall(
  attempts: readonly Attempt[],
  task: BatchTaskDefinition,
  env: AttemptEnvironment,
  settle: (attempt: Attempt, outcome: Outcome) => void,
  span: ProcessSpan | null,
): Promise<void> {
  for (const attempt of attempts) attempt.announce(env);

  const members: Attempt[] = [];
  const jobs: BatchJob<unknown>[] = [];
  for (const attempt of attempts) {
    try {
      const payload = await attempt.payload();
      members.push(attempt);
      jobs.push({
        id: attempt.row.id,
        payload,
        job: attempt.jobInfo(),
        signal: attempt.signal,
      });
    } catch (refused) {
      settle(attempt, { thrown: refused });
    }
  }
  if (members.length === 0) return;

  const timeoutMs = smallest(members.map((a) => a.row.timeout_ms ?? task.timeoutMs ?? null));
  const timeout = startTimeout(
    timeoutMs,
    `Batch of ${members.length} ${task.name} job(s)`,
    (reason) => {
      for (const attempt of members) attempt.timeOut(reason);
    },
  );
  try {
    const call = () => task.batchHandler(jobs, batchContext(members, task, env));
    const handling = Promise.resolve().then(span === null ? call : () => span.run(call));
    try {
      // On timeout every job is recorded at once ...
      const result = await (timeout.expired ? Promise.race([handling, timeout.expired]) : handling);
      const outcomes = readOutcomes(result, members.length, task.name);
      members.forEach((attempt, i) => {
        settle(attempt, outcomes[i] as Outcome);
      });
    } catch (error) {
      for (const attempt of members) settle(attempt, { thrown: error });
    }
    // The span ends with the outcomes, as a single job's does (attempt.ts) ...
    span?.end();
    // ... but the slot stays taken until the handler really returns.
    await handling.catch(() => {});
  } finally {
    timeout.clear();
  }
}

function batchContext(
  members: readonly Attempt[],
  task: BatchTaskDefinition,
  env: AttemptEnvironment,
): BatchContext {
  let logger: Logger | undefined;
  return {
    signal: allAborted(members.map((a) => a.signal)),
    // Made when the handler first asks for it (as a single job's, attempt.ts).
    get logger() {
      logger ??= childLogger(env.logger, {
        task: task.name,
        jobIds: members.map((a) => a.row.id),
      });
      return logger;
    },
    extendLease: async (ms = env.leaseMs) => {
      validateLeaseExtension(ms);
      const kept = await Promise.all(members.map((a) => env.extendLease(a.row, ms)));
      const lost = members.filter((_, i) => !kept[i]).map((a) => a.row.id);
      if (lost.length > 0) {
        throw new RotaError(
          "LEASE_LOST",
          `Jobs ${lost.join(", ")} are no longer leased to this worker (rescued); the others' leases were extended.`,
          { details: { lost } },
        );
      }
    },
  };
}

/** What the batch handler returned, as one outcome per job; BATCH_RESULT_INVALID when it is neither nothing nor that. */
function readOutcomes(result: unknown, count: number, task: string): Outcome[] {
  if (result === undefined || result === null) return new Array(count).fill(SUCCEEDED);
  const invalid = (why: string) =>
    new RotaError(
      "BATCH_RESULT_INVALID",
      `The batch handler of ${task} returned ${why}; return nothing (all succeeded) or one { ok: true } or { ok: false, error } per job, in the order given.`,
      { details: { task } },
    );
  if (!Array.isArray(result)) throw invalid(`a ${typeof result}`);
  if (result.length !== count) throw invalid(`${result.length} outcome(s) for ${count} job(s)`);
  return result.map((entry: BatchOutcome, i) => {
    if (entry?.ok === true) return SUCCEEDED;
    if (entry?.ok === false) return { thrown: entry.error };
    throw invalid(`an outcome at index ${i} that is neither { ok: true } nor { ok: false }`);
  });
}

/** A signal aborted once every one of `signals` is, with the reason of the last to abort. */
function allAborted(signals: readonly AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  const check = (reason: unknown) => {
    if (!controller.signal.aborted && signals.every((s) => s.aborted)) controller.abort(reason);
  };
  for (const signal of signals) {
    signal.addEventListener("abort", () => check(signal.reason), { once: true });
  }
  return controller.signal;
}

function smallest(values: readonly (number | null)[]): number | null {
  const numbers = values.filter((v): v is number => v !== null);
  return numbers.length === 0 ? null : Math.min(...numbers);
}
