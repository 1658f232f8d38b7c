/**
 * The rota processes of a chaos run: `rota worker` and `rota orchestrator`
 * from the built CLI (bin/rota.js), each a child process with its output in
 * a log file of its own. The run kills them with SIGKILL and starts
 * replacements; a process that exits without being asked to is a crash.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChaosError } from "./chaos-error.js";

const ROTA_BIN = fileURLToPath(new URL("../../bin/rota.js", import.meta.url));
export const CHAOS_TASKS = fileURLToPath(new URL("./chaos-tasks.mjs", import.meta.url));

/** The queues the chaos tasks use (chaos-tasks.mjs): every worker serves them all. */
export const CHAOS_QUEUES = ["plain", "limited", "keyed", "sched", "capture", "batch"];

/**
 * Short leases so the run sees many rescues and failovers in a few minutes.
 * A worker's lease (10 s) outlasts a database restart (a few seconds down),
 * so a restart alone does not take running jobs from live workers; a kill
 * does, after the lease.
 */
export const WORKER_LEASE_MS = 10_000;
export const ORCHESTRATOR_LEASE_TTL_MS = 6_000;

export type ProcessKind = "worker" | "orchestrator";

/** "worker <id> running (<tasks>); …" and "orchestrator <holder> running; …" (src/cli). */
const RUNNING_LINE: Record<ProcessKind, RegExp> = {
  worker: /^worker \S+ running \(/m,
  orchestrator: /^orchestrator \S+ running;/m,
};

export interface RotaProcess {
  kind: ProcessKind;
  pid: number;
  child: ChildProcess;
  log: string;
  startedAt: number;
  /** When it printed that it runs (null until then). */
  runningAt: number | null;
  /** When the run sent it SIGKILL. */
  killedAt: number | null;
  /** When the run asked it to stop (SIGTERM) at the end. */
  stopAskedAt: number | null;
  exitedAt: number | null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  exited: Promise<void>;
}

export interface ProcessOptions {
  databaseUrl: string;
  schema: string;
  logDir: string;
  log: (line: string) => void;
}

export class RotaProcesses {
  readonly all: RotaProcess[] = [];
  private readonly clockTicks = clockTicksPerSecond();

  constructor(private readonly options: ProcessOptions) {}

  /** Processes alive and not killed or asked to stop, of `kind` (all kinds without it), oldest first. */
  live(kind?: ProcessKind): RotaProcess[] {
    return this.all.filter(
      (p) =>
        p.exit === null &&
        p.killedAt === null &&
        p.stopAskedAt === null &&
        (kind === undefined || p.kind === kind),
    );
  }

  byPid(pid: number): RotaProcess | undefined {
    return this.all.find((p) => p.pid === pid);
  }

  /**
   * Starts one process and resolves once it prints that it runs. A process
   * that exits first, or takes longer than `timeoutMs`, rejects (and is
   * killed): the caller decides whether to try again.
   */
  async start(kind: ProcessKind, timeoutMs = 60_000): Promise<RotaProcess> {
    const { databaseUrl, schema, logDir } = this.options;
    const args =
      kind === "worker"
        ? [
            "worker",
            "--tasks",
            CHAOS_TASKS,
            "--queues",
            CHAOS_QUEUES.join(","),
            "--concurrency",
            "8",
            "--lease-ms",
            String(WORKER_LEASE_MS),
            "--graceful-stop-ms",
            "5000",
          ]
        : [
            "orchestrator",
            "--tick-ms",
            "1000",
            "--lease-ttl-ms",
            String(ORCHESTRATOR_LEASE_TTL_MS),
          ];
    const env = { ...process.env, DATABASE_URL: databaseUrl, CHAOS_SIDE_URL: databaseUrl };
    const child = spawn(process.execPath, [ROTA_BIN, "--schema", schema, ...args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (child.pid === undefined) {
      throw new ChaosError("CHAOS_PROCESS_FAILED", `rota ${kind} could not be spawned`);
    }
    const log = join(logDir, `${kind}-${child.pid}.log`);
    const out: WriteStream = createWriteStream(log);
    let resolveExited = () => {};
    const record: RotaProcess = {
      kind,
      pid: child.pid,
      child,
      log,
      startedAt: Date.now(),
      runningAt: null,
      killedAt: null,
      stopAskedAt: null,
      exitedAt: null,
      exit: null,
      exited: new Promise<void>((resolve) => {
        resolveExited = resolve;
      }),
    };
    this.all.push(record);
    let seen = "";
    const running = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new ChaosError(
            "CHAOS_PROCESS_FAILED",
            `rota ${kind} ${child.pid} did not start within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const onData = (chunk: Buffer) => {
        out.write(chunk);
        if (record.runningAt !== null) return;
        seen += chunk.toString();
        // The line each prints once it runs (an error may say "running" too).
        if (RUNNING_LINE[kind].test(seen)) {
          record.runningAt = Date.now();
          seen = "";
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        record.exitedAt = Date.now();
        record.exit = { code, signal };
        out.end();
        if (record.runningAt !== null && record.killedAt === null && record.stopAskedAt === null) {
          this.options.log(
            `${kind} ${record.pid} exited on its own (code ${code}, signal ${signal})`,
          );
        }
        resolveExited();
        reject(
          new ChaosError(
            "CHAOS_PROCESS_FAILED",
            `rota ${kind} ${child.pid} exited before it ran (code ${code}, signal ${signal}): ${lastLines(seen)}`,
          ),
        );
      });
    });
    try {
      await running;
    } catch (error) {
      if (record.exit === null) this.kill(record);
      await record.exited;
      throw error;
    }
    this.options.log(`started ${kind} ${record.pid}`);
    return record;
  }

  /** SIGKILL, now; resolves when the process is gone. */
  async kill(target: RotaProcess): Promise<void> {
    if (target.exit !== null) return;
    target.child.kill("SIGKILL");
    // Taken after the signal is sent: the process runs nothing after this
    // instant, so a handler of it ended no later than this.
    target.killedAt = Date.now();
    await target.exited;
  }

  /**
   * Asks every live process to stop (SIGTERM: a graceful stop) and waits up to
   * `timeoutMs`; one still running then is killed and reported.
   */
  async stopAll(timeoutMs: number): Promise<RotaProcess[]> {
    const stopping = this.all.filter((p) => p.exit === null);
    for (const p of stopping) {
      if (p.killedAt !== null) continue;
      p.stopAskedAt = Date.now();
      p.child.kill("SIGTERM");
    }
    const deadline = new Promise((resolve) => setTimeout(resolve, timeoutMs).unref());
    await Promise.race([Promise.all(stopping.map((p) => p.exited)), deadline]);
    const stuck = stopping.filter((p) => p.exit === null);
    for (const p of stuck) {
      p.child.kill("SIGKILL");
      await p.exited;
    }
    return stuck;
  }

  /**
   * The processes that exited on their own after they ran (not killed, not
   * asked to stop), or that exited non-zero when asked to stop.
   */
  crashes(): RotaProcess[] {
    return this.all.filter((p) => {
      if (p.exit === null || p.killedAt !== null || p.runningAt === null) return false;
      if (p.stopAskedAt === null) return true;
      return p.exit.code !== 0;
    });
  }

  /** CPU seconds (user + system) a live process has used so far; null once it is gone. */
  cpuSeconds(p: RotaProcess): number | null {
    if (p.exit !== null) return null;
    try {
      const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
      // Fields after the command name (which may hold spaces), from field 3 on.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]);
      return ticks / this.clockTicks;
    } catch {
      return null;
    }
  }
}

/** The last few lines of a process's output, for a message. */
export function lastLines(text: string, count = 5): string {
  return text.trim().split("\n").slice(-count).join(" | ");
}

/** The tail of a process's log file. */
export function logTail(p: RotaProcess, count = 8): string {
  return existsSync(p.log) ? lastLines(readFileSync(p.log, "utf8"), count) : "";
}

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
}
