import type { Database } from "../../src/db/database.js";
import { nowMs } from "../time.js";

/** One statement rota ran: its name in the .sql file, and when it started and ended. */
export interface StatementTiming {
  name: string;
  start: number;
  end: number;
}

/**
 * Records every named statement a Database runs, with its wall time, by
 * wrapping this one instance's `run` (the library itself is untouched). The
 * orchestrator runs its steps through the Rota's Database, so a tick's
 * statements show which step took what: DueForFill and Materialize are the
 * materialization step, and the time between them is planning in the process.
 */
export function recordStatements(db: Database): {
  take(): StatementTiming[];
  restore(): void;
} {
  const original = db.run;
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
  db.run = wrapped as Database["run"];
  return {
    take() {
      const taken = timings;
      timings = [];
      return taken;
    },
    restore() {
      db.run = original;
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
