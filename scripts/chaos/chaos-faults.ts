/**
 * The faults of a chaos run, planned from the seed before the run starts
 * (when, what, and which process by its rank among the live ones) and then
 * played against the real processes and server:
 *
 * - kill: SIGKILL to a worker, an orchestrator, or the leading orchestrator
 *   (found through rota.diagnose(): the lease holder is host:pid:random); a
 *   replacement starts a little later;
 * - restart: the PostgreSQL server stopped (a fast shutdown, or an immediate
 *   one: a crash), kept down a few seconds, started again; rota's processes
 *   live through it;
 * - terminate: pg_terminate_backend for every backend whose application_name
 *   starts with "rota".
 *
 * Around each restart the CPU time of every rota process is sampled: a
 * process that spins while its database is away (a busy loop on a lost
 * connection) shows as most of a core.
 */
import type { Rota } from "../../src/client.js";
import type { ChaosServer, RestartMode } from "./chaos-server.js";
import {
  ORCHESTRATOR_LEASE_TTL_MS,
  type ProcessKind,
  type RotaProcess,
  type RotaProcesses,
} from "./rota-processes.js";
import type { SeededRandom } from "./seeded-random.js";

export type PlannedFault =
  | {
      atMs: number;
      kind: "kill";
      target: ProcessKind | "leader";
      pick: number;
      replaceAfterMs: number;
    }
  | { atMs: number; kind: "restart"; downMs: number; mode: RestartMode }
  | { atMs: number; kind: "terminate" };

export interface KillRecord {
  pid: number;
  kind: ProcessKind;
  /** The orchestrator held the leader lease when it was killed. */
  leader: boolean;
  at: number;
}

export interface CpuSample {
  pid: number;
  kind: ProcessKind;
  /** What it was doing meanwhile: the database away, or the run's idle end. */
  during: "restart" | "idle";
  windowMs: number;
  /** CPU time used over the window, as a share of one core. */
  share: number;
}

/** A process using more than this share of a core while it can only wait is busy-looping. */
export const BUSY_SHARE = 0.5;

/**
 * The faults for `chaosMs` of chaos: a kill every 5-10 s (a third of them
 * the leader), a terminate every 8-20 s, and at least two restarts (one per
 * 90 s, spread over the run, each 1-4 s down).
 */
export function planFaults(chaosMs: number, random: SeededRandom): PlannedFault[] {
  const faults: PlannedFault[] = [];
  for (let at = random.int(3_000, 6_000); at < chaosMs; at += random.int(5_000, 10_000)) {
    const roll = random.next();
    const target = roll < 0.33 ? "leader" : roll < 0.45 ? "orchestrator" : "worker";
    faults.push({
      atMs: at,
      kind: "kill",
      target,
      pick: random.next(),
      replaceAfterMs: random.int(300, 3_000),
    });
  }
  for (let at = random.int(4_000, 9_000); at < chaosMs; at += random.int(8_000, 20_000)) {
    faults.push({ atMs: at, kind: "terminate" });
  }
  // At least one kill of the leader, whatever the draw.
  const kills = faults.filter(
    (f): f is Extract<PlannedFault, { kind: "kill" }> => f.kind === "kill",
  );
  const middle = kills[Math.floor(kills.length / 2)];
  if (middle && !kills.some((k) => k.target === "leader")) middle.target = "leader";
  // The first restart a fast shutdown, the second a crash (immediate), the
  // others either.
  const restarts = Math.max(2, Math.floor(chaosMs / 90_000));
  const segment = chaosMs / restarts;
  for (let n = 0; n < restarts; n++) {
    const mode: RestartMode =
      n === 0 ? "fast" : n === 1 || random.chance(0.5) ? "immediate" : "fast";
    faults.push({
      atMs: Math.round(segment * n + segment * random.between(0.25, 0.65)),
      kind: "restart",
      downMs: random.int(1_000, 4_000),
      mode,
    });
  }
  return faults.sort((a, b) => a.atMs - b.atMs);
}

export class ChaosFaults {
  readonly kills: KillRecord[] = [];
  readonly cpu: CpuSample[] = [];
  /** Faults that could not be played (a terminate while the server was down, say), with why. */
  readonly skipped: string[] = [];
  private readonly pending: Promise<void>[] = [];
  private stopped = false;

  constructor(
    private readonly plan: readonly PlannedFault[],
    private readonly server: ChaosServer,
    private readonly processes: RotaProcesses,
    private readonly rota: Rota,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Plays the plan from now on, each fault at its time (a slow one does not
   * hold the next back), and resolves once every fault and every
   * replacement it started is done.
   */
  async play(): Promise<void> {
    const start = Date.now();
    for (const fault of this.plan) {
      await sleep(start + fault.atMs - Date.now());
      if (this.stopped) break;
      this.pending.push(
        this.apply(fault).catch((error) => {
          this.skipped.push(`${fault.kind} at ${fault.atMs} ms: ${(error as Error).message}`);
        }),
      );
    }
    await Promise.all(this.pending);
  }

  /** No fault starts after this (those under way finish). */
  stop(): void {
    this.stopped = true;
  }

  /** Samples every live process's CPU over `windowMs` while nothing should keep it busy. */
  async sampleIdle(windowMs: number): Promise<void> {
    const before = this.cpuNow();
    const from = Date.now();
    await sleep(windowMs);
    this.recordCpu(before, Date.now() - from, "idle");
  }

  private async apply(fault: PlannedFault): Promise<void> {
    if (fault.kind === "terminate") {
      if (!this.server.up) throw new Error("the server was down");
      const done = await this.server.terminateRotaBackends();
      this.log(`terminated ${done.terminated} rota backends`);
      return;
    }
    if (fault.kind === "restart") {
      const before = this.cpuNow();
      this.log(`restarting PostgreSQL (${fault.mode} shutdown, down ${fault.downMs} ms)`);
      const done = await this.server.restart(fault.downMs, fault.mode);
      this.recordCpu(before, done.to - done.from, "restart");
      this.log(`PostgreSQL back after ${done.to - done.from} ms`);
      return;
    }
    const victim = await this.victim(fault);
    if (victim === null) throw new Error(`no live ${fault.target} to kill`);
    const leader = victim.kind === "orchestrator" && (await this.leaderPid()) === victim.pid;
    await this.processes.kill(victim);
    this.kills.push({ pid: victim.pid, kind: victim.kind, leader, at: victim.killedAt as number });
    this.log(`killed ${leader ? "leading " : ""}${victim.kind} ${victim.pid}`);
    await sleep(fault.replaceAfterMs);
    await this.replace(victim.kind);
  }

  /** The process a kill takes: the leader (or, if none leads, an orchestrator) or one by rank. */
  private async victim(
    fault: Extract<PlannedFault, { kind: "kill" }>,
  ): Promise<RotaProcess | null> {
    if (fault.target === "leader") {
      // Right after a failover or a restart no lease may be valid for a few
      // seconds: wait for a leader, up to two leases, before taking any
      // orchestrator.
      const giveUpAt = Date.now() + 2 * ORCHESTRATOR_LEASE_TTL_MS;
      while (Date.now() < giveUpAt) {
        const pid = await this.leaderPid();
        const leader = this.processes.live("orchestrator").find((p) => p.pid === pid);
        if (leader) return leader;
        await sleep(500);
      }
    }
    const kind = fault.target === "leader" ? "orchestrator" : fault.target;
    const live = this.processes.live(kind);
    return live.length === 0 ? null : (live[Math.floor(fault.pick * live.length)] as RotaProcess);
  }

  /** The pid in a valid leader lease's holder (host:pid:random), or null. */
  private async leaderPid(): Promise<number | null> {
    const { leader } = await this.rota.diagnose();
    if (!leader?.valid) return null;
    const pid = Number(leader.holder.split(":")[1]);
    return Number.isInteger(pid) ? pid : null;
  }

  /**
   * Starts a process of `kind` once the server is up; a start that fails (its
   * connection terminated while it migrated, say) is tried again.
   */
  async replace(kind: ProcessKind): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      while (!this.server.up) await sleep(200);
      try {
        await this.processes.start(kind);
        return;
      } catch (error) {
        this.log(
          `a replacement ${kind} did not start (attempt ${attempt}): ${(error as Error).message}`,
        );
        if (attempt >= 5) throw error;
        await sleep(1_000);
      }
    }
  }

  private cpuNow(): Map<RotaProcess, number> {
    const now = new Map<RotaProcess, number>();
    for (const p of this.processes.live()) {
      const seconds = this.processes.cpuSeconds(p);
      if (seconds !== null) now.set(p, seconds);
    }
    return now;
  }

  private recordCpu(
    before: Map<RotaProcess, number>,
    windowMs: number,
    during: CpuSample["during"],
  ): void {
    for (const [p, from] of before) {
      const to = this.processes.cpuSeconds(p);
      if (to === null || windowMs <= 0) continue;
      this.cpu.push({
        pid: p.pid,
        kind: p.kind,
        during,
        windowMs,
        share: (to - from) / (windowMs / 1000),
      });
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
