/**
 * The chaos run's own PostgreSQL: rota's embedded server (src/dev/embedded.ts)
 * with a data folder and a port of its own, so restarting it and terminating
 * its connections hurt nobody else (never the shared server other people's
 * tests use). As root the server runs as the system user "postgres", as
 * `rota dev` and the tests run it; embedded.ts hands it the folder.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres } from "../../src/dev/embedded.js";
import { ChaosError } from "./chaos-error.js";

/** A fault the server went through, by this machine's clock (ms since the epoch). */
export interface ServerFault {
  kind: "restart" | "terminate";
  /** A restart's shutdown: "fast" (sessions ended, a checkpoint) or "immediate" (a crash: recovery at start). */
  mode?: RestartMode;
  /** When the fault began: the stop was asked for, or the backends were terminated. */
  from: number;
  /** When the server accepted connections again (equal to `from` for a terminate). */
  to: number;
  /** Backends terminated (terminate only). */
  terminated?: number;
}

export type RestartMode = "fast" | "immediate";

export class ChaosServer {
  readonly faults: ServerFault[] = [];
  private server: EmbeddedPostgres | null = null;
  private down = false;

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts a fresh server in `dataDir` (removed first) on a free port. */
  static async start(dataDir: string, log: (line: string) => void): Promise<ChaosServer> {
    rmSync(dataDir, { recursive: true, force: true });
    const server = new ChaosServer(dataDir, await freePort(), log);
    await server.boot();
    return server;
  }

  get url(): string {
    return `postgres://postgres:rota@127.0.0.1:${this.port}/postgres`;
  }

  /** False from the moment a restart asks the server to stop until it accepts connections again. */
  get up(): boolean {
    return !this.down;
  }

  /**
   * Stops the server, keeps it down for `downMs`, and starts it again on the
   * same port and data; rota's processes are left running through it. A
   * "fast" shutdown ends every session and writes a checkpoint. An
   * "immediate" one is a crash: the server starts with recovery, and what
   * rota's workers committed asynchronously (synchronous_commit off for
   * their claims and outcomes) in the last moments may be gone.
   */
  async restart(downMs: number, mode: RestartMode): Promise<ServerFault> {
    const from = Date.now();
    this.down = true;
    try {
      // The embedded server's stop() sends SIGINT (fast) and waits for the
      // server to exit; SIGQUIT right after turns it into an immediate
      // shutdown, and stop() still sees the exit.
      const postmaster = mode === "immediate" ? postmasterPid(this.dataDir) : null;
      const stopping = this.server?.stop();
      if (postmaster !== null) process.kill(postmaster, "SIGQUIT");
      await stopping;
      this.server = null;
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await this.boot();
    } finally {
      this.down = false;
    }
    const fault: ServerFault = { kind: "restart", mode, from, to: Date.now() };
    this.faults.push(fault);
    return fault;
  }

  /**
   * Terminates every backend whose application_name starts with "rota"
   * (rota's pools, its LISTEN connections, the workers' claim connections),
   * as an administrator or a failover proxy would.
   */
  async terminateRotaBackends(): Promise<ServerFault> {
    const client = new pg.Client({ connectionString: this.url, application_name: "chaos faults" });
    await client.connect();
    try {
      const result = await client.query<{ terminated: number }>(
        `select count(*) filter (where pg_terminate_backend(pid))::int as terminated
         from pg_stat_activity
         where application_name like 'rota%' and pid <> pg_backend_pid()`,
      );
      const at = Date.now();
      const fault: ServerFault = {
        kind: "terminate",
        from: at,
        to: at,
        terminated: result.rows[0]?.terminated ?? 0,
      };
      this.faults.push(fault);
      return fault;
    } finally {
      await client.end();
    }
  }

  async stop(options: { removeData: boolean }): Promise<void> {
    await this.server?.stop();
    this.server = null;
    if (options.removeData) rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async boot(): Promise<void> {
    try {
      this.server = await startEmbeddedPostgres({
        dataDir: this.dataDir,
        port: this.port,
        onLog: (line) => {
          // Only what says something went wrong; the rest is start-up chatter.
          if (
            /PANIC|FATAL: {2}the database system|could not|LOG: {2}server process .* was terminated/.test(
              line,
            )
          )
            this.log(`postgres: ${line}`);
        },
      });
    } catch (cause) {
      throw new ChaosError(
        "CHAOS_SERVER_FAILED",
        `The chaos run's PostgreSQL did not start in ${this.dataDir} on port ${this.port}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }
}

/** The server's process id, from the first line of postmaster.pid. */
function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
