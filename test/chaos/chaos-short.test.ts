// The chaos run (scripts/chaos/run.ts, `npm run chaos`) for one minute of
// faults: worker and orchestrator processes killed with SIGKILL (the leader
// among them), PostgreSQL restarted, rota's connections terminated, under
// schedules, plain, delayed and retrying jobs, limits, change capture and
// batches. Its checks must all come out zero. It runs on a PostgreSQL of its
// own (it restarts it), never the suite's database.
//
// The seed is fixed so a failure here replays with the same plan
// (`npm run chaos -- --minutes 1 --seed <seed>`); CHAOS_SEED picks another.
// The timeouts are generous for a loaded machine; the checks are exact.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { ChaosReport } from "../../scripts/chaos/chaos-report.js";
import { collect, withoutDatabaseUrl } from "../helpers/cli.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RUN = fileURLToPath(new URL("../../scripts/chaos/run.ts", import.meta.url));
const SEED = process.env.CHAOS_SEED ?? "15";

describe("the chaos run, one minute", () => {
  it("loses no job, fires no occurrence twice, passes no limit, explains every rerun", {
    timeout: 15 * 60_000,
  }, async () => {
    // The built CLI runs the workers and orchestrators (npm test builds first).
    const child = spawn(
      process.execPath,
      ["--import", "tsx", RUN, "--minutes", "1", "--seed", SEED, "--json"],
      { cwd: REPO_ROOT, env: withoutDatabaseUrl(), stdio: ["ignore", "pipe", "pipe"] },
    );
    const result = await collect(child);
    let report: ChaosReport;
    try {
      report = JSON.parse(result.stdout);
    } catch {
      throw new Error(`the chaos run printed no report (exit ${result.code}):\n${result.stderr}`);
    }
    expect(report.violations, result.stderr).toEqual([]);
    expect(report.jobs.lost).toBe(0);
    expect(report.jobs.phantom).toBe(0);
    expect(report.jobs.completed + report.jobs.failedForGood).toBe(report.jobs.enqueued);
    expect(report.reruns.unexplained).toBe(0);
    expect(report.schedules).toMatchObject({ firedTwice: 0, missing: 0, stuck: 0 });
    expect(report.limits.violations).toBe(0);
    expect(report.batches).toMatchObject({ callbackTwice: 0, callbackNever: 0, wrongCounts: 0 });
    expect(report.capture.unprocessed).toBe(0);
    expect(report.processes).toMatchObject({ crashed: 0, stuckAtStop: 0, busyLoops: 0 });
    // The faults happened, and there was work for them to hit.
    expect(report.faults.restarts).toBeGreaterThanOrEqual(2);
    expect(report.faults.immediateRestarts).toBeGreaterThanOrEqual(1);
    expect(report.faults.leaderKills).toBeGreaterThanOrEqual(1);
    expect(report.faults.workerKills).toBeGreaterThanOrEqual(1);
    expect(report.faults.terminates).toBeGreaterThanOrEqual(1);
    expect(report.jobs.enqueued).toBeGreaterThan(100);
    expect(report.schedules.occurrences).toBeGreaterThan(100);
    expect(report.ok).toBe(true);
    expect(result.code).toBe(0);
  });
});
