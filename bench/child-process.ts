import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { withTimeout } from "./time.js";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * A benchmark's child process (a worker of process_2proc, of the soak), run
 * with tsx from the checkout, talking over IPC. Both sides agree on three
 * messages: the child sends `{ type: "ready" }` once set up and
 * `{ type: "error", message }` when it fails, and stops when sent
 * `{ type: "stop" }`; everything else it sends goes to `onMessage`.
 */
export interface BenchChild<In> {
  ready: Promise<void>;
  /** Rejects when the child reports an error or exits before it was asked to stop. */
  failed: Promise<never>;
  send(message: In): void;
  /** Sends "stop" and waits for the child to exit; kills it after 30 s. */
  stop(): Promise<void>;
}

export function startBenchChild<In, Out extends { type: string }>(
  file: string,
  args: unknown,
  what: string,
  onMessage: (message: Out) => void,
): BenchChild<In | { type: "stop" }> {
  // The child's output goes to our stderr: stdout is kept for the report.
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", file, JSON.stringify(args)],
    { cwd: REPO_ROOT, stdio: ["ignore", 2, 2, "ipc"] },
  );
  let stopping = false;
  let markReady = () => {};
  let markFailed: (error: Error) => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const failed = new Promise<never>((_, reject) => {
    markFailed = reject;
  });
  // Unhandled until someone races them; never let them crash the run.
  failed.catch(() => {});
  ready.catch(() => {});
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.on("message", (message: Out | { type: "error"; message: string }) => {
    if (message.type === "ready") markReady();
    else if (message.type === "error" && "message" in message) {
      markFailed(new Error(`${what}: ${message.message}`));
    } else onMessage(message as Out);
  });
  child.once("exit", (code, signal) => {
    if (!stopping) markFailed(new Error(`${what} exited early (code ${code}, signal ${signal})`));
  });
  const send = (message: In | { type: "stop" }) => {
    if (child.connected) child.send(message as object);
  };
  return {
    ready,
    failed,
    send,
    stop: async () => {
      stopping = true;
      send({ type: "stop" });
      if ((await withTimeout(exited, 30_000)) === "timeout") {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

/** In the child: sends `message` to the parent; resolves once it is handed to the channel. */
export function sendToParent(message: object): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}
