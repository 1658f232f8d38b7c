/**
 * What an import from another scheduler (pg-boss, graphile-worker) hands to
 * `Schedules.importEntries`, and what it reports back. Each importer reads its
 * peer's schedules and maps them onto schedule inputs with owner "external",
 * listing every option it could not carry over and why; the schedules are
 * then checked whole and written in one transaction (or, for a dry run,
 * written and rolled back, so the outcome reported is the real one).
 */

import type { RotaError } from "../errors.js";
import type { ScheduleInput } from "./schedule-options.js";

/** An option of the peer's schedule that rota did not carry over, and why. */
export interface UnmappedOption {
  option: string;
  value: unknown;
  reason: string;
}

/** One schedule of the peer, mapped: `source` names it as the peer does ("line 4"). */
export interface ImportEntry {
  source: string;
  input: ScheduleInput & { task: string; cron: string; owner: "external" };
  unmapped: UnmappedOption[];
}

/** What the importer read: the entries it mapped, and "source: why" for those it could not. */
export interface ImportPlan {
  entries: ImportEntry[];
  problems: string[];
  /** The error for a plan with problems: every one of them, nothing written. */
  invalid(problems: readonly string[]): RotaError;
}

export interface ImportOptions {
  /** Checks and writes in a transaction that is rolled back: nothing is kept. */
  dryRun?: boolean;
  /** Called after each schedule is written. */
  onProgress?: (done: number, total: number) => void;
}

/** One imported schedule, as the import reports it. */
export interface ImportedSchedule {
  name: string;
  source: string;
  task: string;
  cron: string;
  timezone: string;
  /** "created", "changed" or "unchanged" (for a dry run: what the import would do). */
  outcome: "created" | "changed" | "unchanged";
  unmapped: UnmappedOption[];
}

export interface ImportResult {
  dryRun: boolean;
  owner: "external";
  imported: ImportedSchedule[];
}
