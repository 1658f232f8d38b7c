import { round } from "../stats.js";
import type { SoakMinute } from "./minutes.js";

/** The last minute's p99 may be at most this many times the first's. */
export const LATENCY_GOAL = 1.5;

/** A transaction that holds vacuum back this long in a minute gets a note. */
const HOLDER_NOTE_S = 60;

export const LATENCY_RULE = `the last minute's p99 at most ${LATENCY_GOAL}x minute 1's`;

/**
 * What "bounded" means for dead rows. A share, not a count: the retention
 * keeps succeeded jobs, so the table grows by the rate every minute, and
 * autovacuum takes a table up at a share of its rows too (0.2 by default),
 * so a vacuum that keeps up holds the share in the same band however big the
 * table gets. The highest sample of a minute (every 2 s), not its last: dead
 * rows go up and down with each vacuum, and one sample a minute would land
 * anywhere on that saw.
 */
export const DEAD_TUPLES_RULE =
  "the highest share of dead rows among all rows of rota's tables seen in the last minute, at most the highest seen in the first half of the run";

export interface SoakVerdict {
  /** Both goals met; null when the run is too short to judge (one minute). */
  met: boolean | null;
  latency: {
    met: boolean | null;
    rule: string;
    first_p99_ms: number | null;
    last_p99_ms: number | null;
    ratio: number | null;
  };
  dead_tuples: {
    met: boolean | null;
    rule: string;
    /** Minutes 1 to this one are the first half. */
    first_half_minutes: number;
    first_half_max_share: number | null;
    last_max_share: number | null;
    first_half_max_dead: number | null;
    last_max_dead: number | null;
  };
  /** What explains the figures: autovacuum off, a transaction holding vacuum back, workers behind. */
  notes: string[];
}

export interface VerdictContext {
  /** The server's autovacuum setting, and where it was set (null: not readable). */
  autovacuum: boolean;
  autovacuumSource: string | null;
  /** The jobs table's own storage parameters (a migration's, or --jobs-storage), or null. */
  jobsStorage: string | null;
  /** Jobs enqueued and outcomes written over the whole run, its drain included. */
  enqueued: number;
  completed: number;
  /** The dead rows at which autovacuum takes the jobs table up, at the end. */
  jobsVacuumTrigger: number | null;
  /** The jobs table's autovacuum_count before the run. */
  jobsAutovacuumBefore: number;
}

/** The verdict on the minutes of a run (see LATENCY_RULE and DEAD_TUPLES_RULE). */
export function verdictOf(minutes: readonly SoakMinute[], context: VerdictContext): SoakVerdict {
  const first = minutes[0];
  const last = minutes.at(-1);
  const judged = minutes.length >= 2 && first !== undefined && last !== undefined;
  const half = Math.max(1, Math.floor(minutes.length / 2));
  const firstHalf = minutes.slice(0, half);

  const ratio =
    judged && first.p99_ms !== null && last.p99_ms !== null && first.p99_ms > 0
      ? round(last.p99_ms / first.p99_ms, 2)
      : null;
  const latencyMet = ratio === null ? null : ratio <= LATENCY_GOAL;

  const halfShare = judged ? Math.max(...firstHalf.map((m) => m.dead_share_max)) : null;
  const deadMet = judged && halfShare !== null ? last.dead_share_max <= halfShare : null;

  const notes: string[] = [];
  if (!judged) notes.push("one minute: nothing to compare it with, no verdict");
  if (!context.autovacuum) {
    const where = context.autovacuumSource ? ` (set in ${context.autovacuumSource})` : "";
    notes.push(
      `autovacuum is off on this server${where}: nothing removed dead rows during the run, so they could only grow; measure on a server where it runs (without --database-url the soak starts rota's embedded PostgreSQL, where it does)`,
    );
  } else if (last !== undefined) {
    const vacuumed = minutes.some((m) => m.jobs_vacuum_seconds > 0);
    if (last.jobs_autovacuum_count === context.jobsAutovacuumBefore && !vacuumed) {
      const trigger =
        context.jobsVacuumTrigger === null
          ? ""
          : ` (it takes it up past ${Math.round(context.jobsVacuumTrigger).toLocaleString("en")} dead rows: autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor × its rows)`;
      notes.push(`autovacuum did not vacuum the jobs table during the run${trigger}`);
    }
  }
  // A saw needs whole teeth: a first half without two vacuums has seen no
  // whole climb from one vacuum to the next, so its highest is too low a bar.
  const halfEnd = firstHalf.at(-1);
  if (context.autovacuum && judged && halfEnd !== undefined) {
    const runs = halfEnd.jobs_autovacuum_count - context.jobsAutovacuumBefore;
    if (runs < 2 && last.jobs_autovacuum_count > context.jobsAutovacuumBefore) {
      notes.push(
        `the first half (minutes 1-${half}) saw ${runs} autovacuum(s) of the jobs table, so no whole climb of its dead rows from one vacuum to the next to compare the last minute's with: judge the dead rows on a longer run`,
      );
    }
  }
  if (context.jobsStorage?.includes("autovacuum_enabled=false")) {
    notes.push("autovacuum is disabled on the jobs table (autovacuum_enabled=false)");
  }
  for (const m of minutes) {
    if (m.oldest_xmin_holder_s !== null && m.oldest_xmin_holder_s >= HOLDER_NOTE_S) {
      notes.push(
        `minute ${m.minute}: a transaction of ${m.oldest_xmin_holder} had held a snapshot for ${m.oldest_xmin_holder_s} s: vacuum could not remove rows that died after it began`,
      );
    }
  }
  if (context.completed < context.enqueued) {
    notes.push(
      `the workers did not keep up: ${context.completed.toLocaleString("en")} of ${context.enqueued.toLocaleString("en")} jobs completed by the end of the drain${last ? `, ${last.backlog.toLocaleString("en")} available at the last minute's end` : ""}`,
    );
  }
  return {
    met: latencyMet === null || deadMet === null ? null : latencyMet && deadMet,
    latency: {
      met: latencyMet,
      rule: LATENCY_RULE,
      first_p99_ms: first?.p99_ms ?? null,
      last_p99_ms: last?.p99_ms ?? null,
      ratio,
    },
    dead_tuples: {
      met: deadMet,
      rule: DEAD_TUPLES_RULE,
      first_half_minutes: half,
      first_half_max_share: halfShare,
      last_max_share: judged ? last.dead_share_max : null,
      first_half_max_dead: judged ? Math.max(...firstHalf.map((m) => m.dead_tuples_max)) : null,
      last_max_dead: judged ? last.dead_tuples_max : null,
    },
    notes,
  };
}
