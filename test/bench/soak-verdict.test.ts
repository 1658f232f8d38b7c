import { describe, expect, it } from "vitest";
import type { SoakMinute } from "../../bench/soak/minutes.js";
import { type VerdictContext, verdictOf } from "../../bench/soak/verdict.js";

/** A minute of a soak where only what the verdict reads is set. */
function minute(n: number, p99: number, deadShare: number, over: Partial<SoakMinute> = {}) {
  return {
    minute: n,
    enqueued: 120_000,
    completed: 120_000,
    enqueued_per_s: 2_000,
    completed_per_s: 2_000,
    latency_samples: 120_000,
    p50_ms: p99 / 4,
    p99_ms: p99,
    max_ms: p99 * 2,
    backlog: 3,
    running: 10,
    jobs_live_tuples: 2_000_000,
    jobs_dead_tuples: deadShare * 2_000_000,
    jobs_dead_tuples_max: deadShare * 2_000_000,
    live_tuples: 2_000_000,
    dead_tuples: deadShare * 2_000_000,
    dead_tuples_max: deadShare * 2_000_000,
    dead_share_max: deadShare,
    jobs_total_bytes: 0,
    jobs_index_bytes: 0,
    total_bytes: 0,
    jobs_autovacuum_count: n,
    autovacuum_count: n,
    jobs_vacuum_seconds: 10,
    oldest_xmin_holder_s: 0.1,
    oldest_xmin_holder: "pid 1 (rota)",
    load_average: 1,
    tables: {},
    ...over,
  } satisfies SoakMinute;
}

const context: VerdictContext = {
  autovacuum: true,
  autovacuumSource: null,
  jobsStorage: null,
  enqueued: 1_200_000,
  completed: 1_200_000,
  jobsVacuumTrigger: 400_050,
  jobsAutovacuumBefore: 0,
};

describe("the soak's verdict", () => {
  it("is met when the last p99 is within 1.5x of the first and the dead share stays in its band", () => {
    // A saw: autovacuum takes the share down and it climbs again.
    const shares = [0.1, 0.16, 0.05, 0.15, 0.08, 0.16, 0.04, 0.12, 0.09, 0.15];
    const minutes = shares.map((share, i) => minute(i + 1, i === 9 ? 15 : 10, share));
    const verdict = verdictOf(minutes, context);
    expect(verdict).toMatchObject({
      met: true,
      latency: { met: true, first_p99_ms: 10, last_p99_ms: 15, ratio: 1.5 },
      dead_tuples: {
        met: true,
        first_half_minutes: 5,
        first_half_max_share: 0.16,
        last_max_share: 0.15,
      },
      notes: [],
    });
  });

  it("is not met when the p99 grows past 1.5x, or the dead rows outgrow the first half's", () => {
    const slower = [minute(1, 10, 0.1), minute(2, 10, 0.1), minute(3, 15.1, 0.1)];
    expect(verdictOf(slower, context)).toMatchObject({ met: false, latency: { met: false } });
    const growing = [
      minute(1, 10, 0.1),
      minute(2, 10, 0.2),
      minute(3, 10, 0.3),
      minute(4, 10, 0.4),
    ];
    const verdict = verdictOf(growing, context);
    expect(verdict).toMatchObject({
      met: false,
      latency: { met: true },
      dead_tuples: { met: false, first_half_minutes: 2, first_half_max_share: 0.2 },
    });
  });

  it("says why: autovacuum off, a transaction holding vacuum back, workers behind", () => {
    const minutes = [
      minute(1, 10, 0.1, { jobs_autovacuum_count: 0, jobs_vacuum_seconds: 0 }),
      minute(2, 10, 0.2, {
        jobs_autovacuum_count: 0,
        jobs_vacuum_seconds: 0,
        oldest_xmin_holder_s: 95,
        oldest_xmin_holder: "pid 4242 (psql)",
        backlog: 5_000,
      }),
    ];
    const off = verdictOf(minutes, {
      ...context,
      autovacuum: false,
      autovacuumSource: "/etc/postgresql/15/main/conf.d/90-ci.conf",
      completed: 1_000_000,
    });
    expect(off.notes).toEqual([
      expect.stringContaining(
        "autovacuum is off on this server (set in /etc/postgresql/15/main/conf.d/90-ci.conf)",
      ),
      expect.stringContaining(
        "minute 2: a transaction of pid 4242 (psql) had held a snapshot for 95 s",
      ),
      expect.stringContaining(
        "1,000,000 of 1,200,000 jobs completed by the end of the drain, 5,000 available",
      ),
    ]);
    // With autovacuum on, but the table never reached its trigger.
    expect(verdictOf(minutes, context).notes[0]).toBe(
      "autovacuum did not vacuum the jobs table during the run (it takes it up past 400,050 dead rows: autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor × its rows)",
    );
  });

  it("says when the first half holds no whole vacuum cycle to compare with", () => {
    // Autovacuum first came in minute 1, then once a minute: minute 1's highest is not a whole climb.
    const minutes = [minute(1, 10, 0.02), minute(2, 10, 0.029, { jobs_autovacuum_count: 2 })];
    const verdict = verdictOf(minutes, context);
    expect(verdict.dead_tuples.met).toBe(false);
    expect(verdict.notes).toEqual([
      expect.stringContaining("the first half (minutes 1-1) saw 1 autovacuum(s) of the jobs table"),
    ]);
  });

  it("gives none for a run of one minute", () => {
    const verdict = verdictOf([minute(1, 10, 0.1)], context);
    expect(verdict.met).toBeNull();
    expect(verdict.latency.met).toBeNull();
    expect(verdict.dead_tuples.met).toBeNull();
    expect(verdict.notes).toContain("one minute: nothing to compare it with, no verdict");
  });
});
