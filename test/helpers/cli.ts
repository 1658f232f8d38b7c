import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROTA_BIN = fileURLToPath(new URL("../../bin/rota.js", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (npm test builds first) to completion. */
export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return collect(startCli(args, options));
}

export function startCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ChildProcess {
  return spawn(process.execPath, [ROTA_BIN, ...args], {
    cwd: options.cwd,
    env: options.env ?? withoutDatabaseUrl(),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The environment minus DATABASE_URL, so each test says which database it means. */
export function withoutDatabaseUrl(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  return env;
}

/** Resolves with the child's stderr so far once it contains `text`. */
export function waitForOutput(
  child: ChildProcess,
  text: string,
  timeoutMs = 60_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for "${text}"; output so far:\n${seen}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve(seen);
      }
    };
    child.stderr?.on("data", onData);
    child.stdout?.on("data", onData);
    child.on("close", () => {
      clearTimeout(timer);
      if (!seen.includes(text)) reject(new Error(`exited before "${text}"; output:\n${seen}`));
    });
  });
}

/**
 * The CLI pointed at one test schema: `cli(...args)` runs it; `json(...args)`
 * runs it with --json, expects exit 0 and parses stdout.
 */
export function cliOn(target: () => { schema: string; url: string }) {
  const cli = (...args: string[]) => {
    const { schema, url } = target();
    return runCli([...args, "--schema", schema, "--database-url", url]);
  };
  const json = async (...args: string[]) => {
    const result = await cli(...args, "--json");
    if (result.code !== 0) {
      throw new Error(`rota ${args.join(" ")} --json exited ${result.code}: ${result.stderr}`);
    }
    return JSON.parse(result.stdout);
  };
  return { cli, json };
}
