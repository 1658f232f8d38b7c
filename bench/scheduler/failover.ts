import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Rota } from "../../src/client.js";
import { percentile, round } from "../stats.js";
import { dropSchema } from "../systems/schema.js";
import { sleep } from "../time.js";
import {
  executionStates,
  type Fire,
  type FiringMeasurement,
  settle,
  startFiring,
} from "./lateness.js";

const ROTA_BIN = fileURLToPath(new URL("../../bin/rota.js", import.meta.url));
/** The orchestrators' defaults, as `rota orchestrator` runs them. */
const LEASE_TTL_MS = 15_000;

export interface FailoverMeasurement extends FiringMeasurement {
  workload: "failover";
  /** Seconds into the run at which the leader was killed, and how long each took to be replaced. */
  kills: { at_s: number; takeover_s: number }[];
  /** Lateness of the runs planned to start while no orchestrator led (kill to takeover). */
  failover_p50_ms: number;
  failover_p99_ms: number;
  failover_max_ms: number;
  failover_samples: number;
}

/**
 * failover: `schedules` every-second schedules (catch-up all), a worker in
 * this process, and two `rota orchestrator` processes with their default
 * settings. The leader is killed with SIGKILL at each of `killAt` (seconds
 * into the run) and a replacement process started, so two orchestrators run
 * again; the runs planned to start between a kill and the next leader's
 * takeover show what a failover costs. Every occurrence must fire once.
 */
export async function failoverWorkload(
  databaseUrl: string,
  options: { schedules: number; seconds: number; concurrency: number; killAt: number[] },
  log: (line: string) => void,
): Promise<FailoverMeasurement> {
  const schema = "rota_bench_sched_failover";
  await dropSchema(databaseUrl, schema);
  const rota = new Rota({ connection: databaseUrl, schema });
  const children = new Map<number, ChildProcess>();
  const startOrchestrator = () => {
    const child = spawn(
      process.execPath,
      [ROTA_BIN, "--database-url", databaseUrl, "--schema", schema, "orchestrator"],
      { stdio: ["ignore", "ignore", "ignore"] },
    );
    if (child.pid !== undefined) children.set(child.pid, child);
  };
  try {
    await rota.migrate();
    const firing = await startFiring(rota, options);
    startOrchestrator();
    startOrchestrator();
    const started = Date.now();
    const windows: { from: number; to: number }[] = [];
    const kills: FailoverMeasurement["kills"] = [];
    try {
      log(
        `failover: ${options.schedules} schedules firing every second for ${options.seconds} s, 2 orchestrator processes, the leader killed at ${options.killAt.join(" s, ")} s`,
      );
      for (const at of options.killAt) {
        await sleep(Math.max(0, started + at * 1000 - Date.now()));
        const leader = await leaderPid(rota);
        const child = leader === null ? undefined : children.get(leader);
        if (!child || leader === null)
          throw new Error(`failover: no orchestrator process leads at ${at} s`);
        const killedAt = Date.now();
        child.kill("SIGKILL");
        children.delete(leader);
        startOrchestrator();
        // Until another process holds the lease: the standby, after the dead one's lease expired.
        let next: number | null = leader;
        while (next === leader || next === null) {
          if (Date.now() - killedAt > 4 * LEASE_TTL_MS) throw new Error("failover: no takeover");
          await sleep(100);
          next = await leaderPid(rota);
        }
        const takeover = Date.now();
        windows.push({ from: killedAt, to: takeover });
        kills.push({
          at_s: round((killedAt - started) / 1000, 1),
          takeover_s: round((takeover - killedAt) / 1000, 1),
        });
        log(
          `failover: leader ${leader} killed at ${at} s; ${next} leads ${((takeover - killedAt) / 1000).toFixed(1)} s later`,
        );
      }
      await sleep(Math.max(0, started + options.seconds * 1000 - Date.now()));
      const counted = await settle(firing);
      const during = (f: Fire) => windows.some((w) => f.runAt >= w.from && f.runAt <= w.to);
      const late = firing.samples.filter(during).map((f) => f.lateMs);
      return {
        workload: "failover",
        schedules: options.schedules,
        seconds: options.seconds,
        concurrency: options.concurrency,
        kills,
        failover_p50_ms: round(percentile(late, 50), 1),
        failover_p99_ms: round(percentile(late, 99), 1),
        failover_max_ms: round(Math.max(...late), 1),
        failover_samples: late.length,
        ...counted,
        states: await executionStates(rota, schema),
      };
    } finally {
      for (const child of children.values()) child.kill("SIGKILL");
      await firing.worker.stop();
    }
  } finally {
    await rota.close();
    await dropSchema(databaseUrl, schema);
  }
}

/**
 * When the leader is killed, in seconds into a run of `seconds`: once early
 * on, and again once the first failover is over (a takeover takes the lease
 * TTL plus a tick) when the run leaves room for the second to end too.
 */
export function killTimes(seconds: number): number[] {
  const first = Math.max(5, Math.round(seconds / 6));
  const second = first + 22;
  return second + 20 <= seconds ? [first, second] : [first];
}

/** The pid of the process that holds a valid leader lease (its holder is host:pid:random), or null. */
async function leaderPid(rota: Rota): Promise<number | null> {
  const { leader } = await rota.diagnose();
  if (!leader?.valid) return null;
  const pid = Number(leader.holder.split(":")[1]);
  return Number.isInteger(pid) ? pid : null;
}
