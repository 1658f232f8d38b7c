import { Database } from "../../src/db/database.js";
import { nowMs } from "../time.js";

/** One statement rota ran: its name in the .sql file, and when it started and ended. */
export interface StatementTiming {
  name: string;
  start: number;
  end: number;
}

/** What `recordStatements` names a whole `db.transaction` (begin to commit). */
export const TRANSACTION = "(transaction)";

/**
 * Records every named statement any Database runs, with its wall time, by
 * wrapping `run` on Database's prototype (the library itself is untouched;
 * restore() puts it back), and each transaction it runs, begin to commit, as
 * TRANSACTION. The orchestrator runs its steps on connections of its own (a
 * Database it derives), so every instance is recorded, not the Rota's alone;
 * a workload records while only its orchestrator runs statements, so a
 * tick's statements show which step took what: DueForFill and Materialize
 * are the materialization step, and the time between them is planning in
 * the process.
 */
export function recordStatements(): {
  take(): StatementTiming[];
  restore(): void;
} {
  const proto = Database.prototype;
  const original = proto.run;
  const originalTransaction = proto.transaction;
  let timings: StatementTiming[] = [];
  const wrapped = function (this: Database, ...args: Parameters<Database["run"]>) {
    const [query] = args;
    const start = nowMs();
    const pending = original.apply(this, args);
    const name = query.name.slice(query.name.lastIndexOf(".") + 1);
    pending.then(
      () => timings.push({ name, start, end: nowMs() }),
      () => timings.push({ name: `${name} (failed)`, start, end: nowMs() }),
    );
    return pending;
  };
  proto.run = wrapped as Database["run"];
  proto.transaction = function <T>(this: Database, fn: Parameters<Database["transaction"]>[0]) {
    const start = nowMs();
    const pending = originalTransaction.call(this, fn) as Promise<T>;
    const record = () => timings.push({ name: TRANSACTION, start, end: nowMs() });
    pending.then(record, record);
    return pending;
  } as Database["transaction"];
  return {
    take() {
      const taken = timings;
      timings = [];
      return taken;
    },
    restore() {
      proto.run = original;
      proto.transaction = originalTransaction;
    },
  };
}

/** The materialization step of a tick, from its statements. */
export interface StepTiming {
  /** First DueForFill start to the end of the last DueForFill or Materialize. */
  stepMs: number;
  dueForFillMs: number;
  materializeSqlMs: number;
  /** The rest of the step: planning each schedule in the process (plan.ts, spec.ts). */
  planMs: number;
  statements: number;
}

export function materializeStep(timings: StatementTiming[]): StepTiming | null {
  const step = timings.filter((t) => t.name === "DueForFill" || t.name === "Materialize");
  if (step.length === 0) return null;
  const start = Math.min(...step.map((t) => t.start));
  const end = Math.max(...step.map((t) => t.end));
  const sum = (name: string) =>
    step.filter((t) => t.name === name).reduce((total, t) => total + (t.end - t.start), 0);
  const dueForFillMs = sum("DueForFill");
  const materializeSqlMs = sum("Materialize");
  return {
    stepMs: end - start,
    dueForFillMs,
    materializeSqlMs,
    planMs: Math.max(0, end - start - dueForFillMs - materializeSqlMs),
    statements: step.length,
  };
}

/** The materialization step of a tick that wrote one fan-out cadence (src/schedule/fan-out.ts). */
export interface FanOutStepTiming {
  /** First DueForFill start to the end of the last statement or transaction before reconcile's. */
  stepMs: number;
  dueForFillMs: number;
  /** Materialize: the cursor advanced (compare-and-set, lease fence). */
  materializeSqlMs: number;
  /** Count of the enabled targets, then DeclareBy* and CloseTargets (the cursor). */
  countMs: number;
  cursorMs: number;
  /** FetchTargets: each page of target keys, in placement order. */
  fetchMs: number;
  fetches: number;
  /** FanOut: each page's executions inserted. */
  fanOutMs: number;
  fanOuts: number;
  /** The transaction's start (a pooled connection, BEGIN) to its first statement. */
  beginMs: number;
  /** Its last statement's end to the transaction's end (COMMIT). */
  commitMs: number;
  /** The rest of the step: planning, each page's offsets (distribution.ts), the driver. */
  processMs: number;
}

/**
 * The parts of a tick's materialization step when it wrote a fan-out
 * cadence: everything from the first DueForFill to the start of the
 * reconcile step (Drifted), which follows it in the tick.
 */
export function fanOutStep(timings: StatementTiming[]): FanOutStepTiming | null {
  const first = timings.find((t) => t.name === "DueForFill");
  if (!first) return null;
  const reconcile = Math.min(
    ...timings.filter((t) => t.name === "Drifted").map((t) => t.start),
    Number.POSITIVE_INFINITY,
  );
  const step = timings.filter((t) => t.start >= first.start && t.start < reconcile);
  const statements = step.filter((t) => t.name !== TRANSACTION);
  const sum = (...names: string[]) =>
    statements
      .filter((t) => names.includes(t.name))
      .reduce((total, t) => total + (t.end - t.start), 0);
  const count = (name: string) => statements.filter((t) => t.name === name).length;
  const stepMs = Math.max(...step.map((t) => t.end)) - first.start;
  let beginMs = 0;
  let commitMs = 0;
  for (const transaction of step.filter((t) => t.name === TRANSACTION)) {
    const inside = statements.filter(
      (t) => t.start >= transaction.start && t.end <= transaction.end,
    );
    if (inside.length === 0) continue;
    beginMs += Math.min(...inside.map((t) => t.start)) - transaction.start;
    commitMs += transaction.end - Math.max(...inside.map((t) => t.end));
  }
  const statementsMs = statements.reduce((total, t) => total + (t.end - t.start), 0);
  return {
    stepMs,
    dueForFillMs: sum("DueForFill"),
    materializeSqlMs: sum("Materialize"),
    countMs: sum("Count"),
    cursorMs: sum("DeclareByKey", "DeclareByHash", "CloseTargets"),
    fetchMs: sum("FetchTargets"),
    fetches: count("FetchTargets"),
    fanOutMs: sum("FanOut"),
    fanOuts: count("FanOut"),
    beginMs,
    commitMs,
    processMs: Math.max(0, stepMs - statementsMs - beginMs - commitMs),
  };
}
