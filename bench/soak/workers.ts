import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { withTimeout } from "../time.js";
import type { SoakChildArguments, SoakChildMessage, SoakParentMessage } from "./protocol.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHILD = fileURLToPath(new URL("./worker-child.ts", import.meta.url));

/** One worker process of the soak, as the parent sees it. */
export interface SoakWorker {
  /** Its worker has started. */
  ready: Promise<void>;
  /** Rejects when it reports an error or exits before it was asked to stop. */
  failed: Promise<never>;
  send(message: SoakParentMessage): void;
  /** Asks it to stop (its last progress comes first); kills it after 30 s. */
  stop(): Promise<void>;
}

/** Starts bench/soak/worker-child.ts; its progress messages go to `onProgress`. */
export function startSoakWorker(
  args: SoakChildArguments,
  onProgress: (message: Extract<SoakChildMessage, { type: "progress" }>) => void,
): SoakWorker {
  // Its output goes to our stderr: stdout is kept for the report.
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", CHILD, JSON.stringify(args)],
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
  // Unhandled until someone races it: never let it crash the run by itself.
  failed.catch(() => {});
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.on("message", (message: SoakChildMessage) => {
    if (message.type === "ready") markReady();
    else if (message.type === "progress") onProgress(message);
    else if (message.type === "error") {
      markFailed(new Error(`soak worker ${args.index}: ${message.message}`));
    }
  });
  child.once("exit", (code, signal) => {
    if (!stopping) {
      markFailed(new Error(`soak worker ${args.index} exited (code ${code}, signal ${signal})`));
    }
  });
  const send = (message: SoakParentMessage) => {
    if (child.connected) child.send(message);
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
