import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/dev/embedded.js";

/**
 * A PgBouncer of the test's own: its own config, auth file, port and log,
 * in transaction pooling mode, in front of the suite's PostgreSQL. Nothing
 * of the machine's pgbouncer setup (/etc/pgbouncer, a service) is used.
 */
export interface PgBouncer {
  /** `url` (the suite's database URL) with its host and port replaced by PgBouncer's. */
  url(url: string): string;
  port: number;
  /** "1.18.0". */
  version: string;
  /** What PgBouncer logged so far. */
  log(): string;
  stop(): Promise<void>;
}

/** The pgbouncer binary on this machine, or null (Debian puts it in /usr/sbin). */
export function findPgBouncer(): string | null {
  for (const candidate of ["pgbouncer", "/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"]) {
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      return candidate;
    } catch {}
  }
  return null;
}

export function pgBouncerVersion(binary: string): string {
  const out = execFileSync(binary, ["--version"]).toString();
  return /PgBouncer (\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1] ?? "unknown";
}

/** a >= b for dotted versions ("1.21.0" >= "1.21"). */
export function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export async function startPgBouncer(
  binary: string,
  databaseUrl: string,
  options: { poolSize?: number } = {},
): Promise<PgBouncer> {
  const target = new URL(databaseUrl);
  const user = decodeURIComponent(target.username || userInfo().username);
  const password = decodeURIComponent(target.password);
  const database = decodeURIComponent(target.pathname.slice(1)) || user;
  const version = pgBouncerVersion(binary);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "rota-pgbouncer-"));
  const ini = join(dir, "pgbouncer.ini");
  const logFile = join(dir, "pgbouncer.log");
  const serverLogin = password === "" ? `user=${user}` : `user=${user} password=${password}`;
  const lines = [
    "[databases]",
    `${database} = host=${target.hostname} port=${target.port || 5432} dbname=${database} ${serverLogin}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    // No Unix socket: another pgbouncer on this machine may own the default one.
    "unix_socket_dir =",
    "auth_type = trust",
    `auth_file = ${join(dir, "userlist.txt")}`,
    "pool_mode = transaction",
    // Few server connections, so consecutive statements of one client land
    // on different ones: what breaks session state shows at once.
    `default_pool_size = ${options.poolSize ?? 3}`,
    "max_client_conn = 200",
    `logfile = ${logFile}`,
    `pidfile = ${join(dir, "pgbouncer.pid")}`,
  ];
  // From 1.21 PgBouncer can track protocol-level prepared statements; the
  // tests want the behaviour rota must not rely on, so it stays off.
  if (versionAtLeast(version, "1.21")) lines.push("max_prepared_statements = 0");
  writeFileSync(ini, `${lines.join("\n")}\n`);
  writeFileSync(join(dir, "userlist.txt"), `"${user}" "${password}"\n`);
  // PgBouncer refuses to run as root: as root, it runs as "postgres" (-u),
  // which must be able to write its log and pid file.
  const args = [ini];
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    chownSync(dir, uid, gid);
    args.unshift("-u", "postgres");
  }
  const child: ChildProcess = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitForPort(port, child, () => output);
  const proxied = (url: string) => {
    const parsed = new URL(url);
    parsed.hostname = "127.0.0.1";
    parsed.port = String(port);
    return parsed.toString();
  };
  return {
    url: proxied,
    port,
    version,
    log: () => output,
    async stop() {
      // SIGTERM is an immediate shutdown up to 1.22 and a wait for the
      // clients to leave after; they have left, or SIGKILL follows.
      if (child.exitCode === null) child.kill("SIGTERM");
      const late = setTimeout(() => child.kill("SIGKILL"), 2_000);
      await exited;
      clearTimeout(late);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, child: ChildProcess, output: () => string) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`pgbouncer did not listen on ${port} within 10 s: ${output()}`);
}
