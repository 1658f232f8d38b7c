import { percentile, round } from "../stats.js";
import type { SoakChildMessage } from "./protocol.js";
import type { Backlog, Sample } from "./sampler.js";

/** Per table, at the minute's end: the figures the JSON keeps for every table of the schema. */
export interface TableFigures {
  live_tuples: number;
  dead_tuples: number;
  total_bytes: number;
  index_bytes: number;
  autovacuum_count: number;
}

/** One minute of the soak (1-based `minute`), as the report and the JSON give it. */
export interface SoakMinute {
  minute: number;
  enqueued: number;
  /** Outcomes written in this minute (job:run:success in the workers). */
  completed: number;
  enqueued_per_s: number;
  completed_per_s: number;
  /**
   * Enqueue (right before the batch's call: its commit included) to handler
   * start, of the jobs enqueued in this minute, whenever they started.
   */
  latency_samples: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  /** Available jobs (the backlog) and running ones at the minute's end. */
  backlog: number;
  running: number;
  jobs_live_tuples: number;
  /** Dead rows of the jobs table at the minute's end, and the most any sample of the minute saw. */
  jobs_dead_tuples: number;
  jobs_dead_tuples_max: number;
  /** The same over all of rota's tables. */
  live_tuples: number;
  dead_tuples: number;
  dead_tuples_max: number;
  /** The highest share of dead rows among all rows (live + dead) of rota's tables in any sample. */
  dead_share_max: number;
  /** The jobs table with its indexes and TOAST (pg_total_relation_size), its indexes alone (pg_indexes_size). */
  jobs_total_bytes: number;
  jobs_index_bytes: number;
  /** pg_total_relation_size summed over rota's tables. */
  total_bytes: number;
  /** Autovacuum runs so far (autovacuum_count): of the jobs table, and of all of rota's tables. */
  jobs_autovacuum_count: number;
  autovacuum_count: number;
  /** Seconds of the minute a vacuum was seen running on the jobs table (sampled every SAMPLE_MS). */
  jobs_vacuum_seconds: number;
  /** The oldest transaction holding vacuum back in any sample of the minute (seconds), and whose. */
  oldest_xmin_holder_s: number | null;
  oldest_xmin_holder: string | null;
  /** The machine's 1-minute load average at the minute's end. */
  load_average: number;
  tables: Record<string, TableFigures>;
}

const MINUTE_MS = 60_000;

/**
 * Gathers what the soak sees, minute by minute from `startAt` (epoch ms,
 * nowMs()): jobs enqueued (by their stamp), outcomes written and latencies
 * (from the workers), and the database's samples; `row` makes a minute's
 * report once the minute is over.
 */
export class MinuteLog {
  private readonly enqueued: number[] = [];
  private readonly completed: number[] = [];
  private readonly latencies: number[][] = [];
  private readonly samples: Sample[][] = [];

  constructor(
    private readonly startAt: number,
    private readonly sampleMs: number,
  ) {}

  /** 0-based: the minute that holds `at`. */
  minuteOf(at: number): number {
    return Math.max(0, Math.floor((at - this.startAt) / MINUTE_MS));
  }

  enqueuedAt(count: number, at: number): void {
    add(this.enqueued, this.minuteOf(at), count);
  }

  progress(message: Extract<SoakChildMessage, { type: "progress" }>): void {
    message.stamps.forEach((stamp, i) => {
      const minute = this.minuteOf(stamp);
      const bucket = this.latencies[minute] ?? [];
      bucket.push(message.latencies[i] as number);
      this.latencies[minute] = bucket;
    });
    for (const [minute, count] of Object.entries(message.completed)) {
      add(this.completed, Number(minute), count);
    }
  }

  sampled(sample: Sample, at: number): void {
    const minute = this.minuteOf(at);
    const samples = this.samples[minute] ?? [];
    samples.push(sample);
    this.samples[minute] = samples;
  }

  /** Jobs enqueued, and outcomes written, over the whole run, the minutes after the last included. */
  totals(): { enqueued: number; completed: number } {
    const sum = (values: number[]) => values.reduce((a, b) => a + (b ?? 0), 0);
    return { enqueued: sum(this.enqueued), completed: sum(this.completed) };
  }

  /** Outcomes written after minute `last` (0-based): the drain once enqueueing stopped. */
  completedAfter(last: number): number {
    return this.completed.slice(last + 1).reduce((a, b) => a + (b ?? 0), 0);
  }

  /** The report of minute `minute` (0-based): `end` is the sample taken as it ended. */
  row(minute: number, end: Sample, backlog: Backlog, loadAverage: number): SoakMinute {
    const samples = [...(this.samples[minute] ?? []), end];
    const latencies = this.latencies[minute] ?? [];
    const enqueued = this.enqueued[minute] ?? 0;
    const completed = this.completed[minute] ?? 0;
    const jobs = (sample: Sample) => sample.tables.find((t) => t.table_name === "jobs");
    const sum = (sample: Sample, field: "live_tuples" | "dead_tuples" | "total_bytes") =>
      sample.tables.reduce((total, t) => total + t[field], 0);
    const share = (sample: Sample) => {
      const dead = sum(sample, "dead_tuples");
      return dead / Math.max(1, dead + sum(sample, "live_tuples"));
    };
    const holders = samples.flatMap((s) => (s.oldestHolder ? [s.oldestHolder] : []));
    const oldest = holders.reduce<(typeof holders)[number] | null>(
      (a, b) => (a === null || b.age_ms > a.age_ms ? b : a),
      null,
    );
    return {
      minute: minute + 1,
      enqueued,
      completed,
      enqueued_per_s: round(enqueued / 60, 1),
      completed_per_s: round(completed / 60, 1),
      latency_samples: latencies.length,
      p50_ms: latencies.length > 0 ? round(percentile(latencies, 50), 1) : null,
      p99_ms: latencies.length > 0 ? round(percentile(latencies, 99), 1) : null,
      // A loop, not Math.max(...): a minute holds 120,000 samples, past the arguments a call takes.
      max_ms:
        latencies.length > 0
          ? round(
              latencies.reduce((a, b) => Math.max(a, b)),
              1,
            )
          : null,
      backlog: backlog.available,
      running: backlog.running,
      ...figuresOf(end),
      jobs_dead_tuples_max: Math.max(...samples.map((s) => jobs(s)?.dead_tuples ?? 0)),
      live_tuples: sum(end, "live_tuples"),
      dead_tuples: sum(end, "dead_tuples"),
      dead_tuples_max: Math.max(...samples.map((s) => sum(s, "dead_tuples"))),
      dead_share_max: round(Math.max(...samples.map(share)), 4),
      total_bytes: sum(end, "total_bytes"),
      jobs_autovacuum_count: jobs(end)?.autovacuum_count ?? 0,
      autovacuum_count: end.tables.reduce((total, t) => total + t.autovacuum_count, 0),
      jobs_vacuum_seconds:
        (samples.filter((s) => s.jobsVacuumPhase !== null).length * this.sampleMs) / 1000,
      oldest_xmin_holder_s: oldest ? round(oldest.age_ms / 1000, 1) : null,
      oldest_xmin_holder: oldest
        ? `pid ${oldest.pid}${oldest.application ? ` (${oldest.application})` : ""}`
        : null,
      load_average: round(loadAverage, 2),
    };
  }
}

/** The jobs table's figures, and every table's, in one sample. */
export function figuresOf(
  sample: Sample,
): Pick<
  SoakMinute,
  "jobs_live_tuples" | "jobs_dead_tuples" | "jobs_total_bytes" | "jobs_index_bytes" | "tables"
> {
  const jobs = sample.tables.find((t) => t.table_name === "jobs");
  return {
    jobs_live_tuples: jobs?.live_tuples ?? 0,
    jobs_dead_tuples: jobs?.dead_tuples ?? 0,
    jobs_total_bytes: jobs?.total_bytes ?? 0,
    jobs_index_bytes: jobs?.index_bytes ?? 0,
    tables: Object.fromEntries(
      sample.tables.map((t) => [
        t.table_name,
        {
          live_tuples: t.live_tuples,
          dead_tuples: t.dead_tuples,
          total_bytes: t.total_bytes,
          index_bytes: t.index_bytes,
          autovacuum_count: t.autovacuum_count,
        },
      ]),
    ),
  };
}

function add(counts: number[], index: number, n: number): void {
  counts[index] = (counts[index] ?? 0) + n;
}
