// rota as it was at an earlier commit, built from git into a temporary
// folder with today's node_modules (every earlier release's dependencies are
// a subset of them), for tests that run an older release's processes
// against a schema the current code migrates.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../", import.meta.url));

export interface PastRelease {
  /** The built release's folder (its `dist/index.js` is its library). */
  root: string;
  /** Starts a process of its CLI, `--schema` appended; killed by remove() if still running. */
  cli(args: string[], env: NodeJS.ProcessEnv): ChildProcess;
  /** Kills its processes still running and deletes its folder. */
  remove(): void;
}

export function buildPastRelease(commit: string): PastRelease {
  const root = mkdtempSync(join(tmpdir(), "rota-past-"));
  const archive = execFileSync(
    "git",
    ["-C", repo, "archive", commit, "bin", "src", "scripts", "package.json", "tsconfig.json"],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  execFileSync("tar", ["-x", "-C", root], { input: archive });
  symlinkSync(join(repo, "node_modules"), join(root, "node_modules"));
  execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: root, stdio: "ignore" });
  const children: ChildProcess[] = [];
  return {
    root,
    cli(args, env) {
      const child = spawn(process.execPath, [join(root, "bin/rota.js"), ...args], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(child);
      // Kept, so a test can say why a process of that release exited.
      let output = "";
      const keep = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-8_000);
      };
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      outputs.set(child, () => output);
      return child;
    },
    remove() {
      for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(root, { recursive: true, force: true });
    },
  };
}

const outputs = new WeakMap<ChildProcess, () => string>();

/** The last 8 kB a process of a past release printed (stdout and stderr), for an assertion's message. */
export function outputOf(child: ChildProcess): string {
  return outputs.get(child)?.() ?? "";
}

/** The exit code of a process, once it has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}
