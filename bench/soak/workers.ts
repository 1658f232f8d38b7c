import { fileURLToPath } from "node:url";
import { type BenchChild, startBenchChild } from "../child-process.js";
import type { SoakChildArguments, SoakChildMessage, SoakParentMessage } from "./protocol.js";

const CHILD = fileURLToPath(new URL("./worker-child.ts", import.meta.url));

/** One worker process of the soak, as the parent sees it. */
export type SoakWorker = BenchChild<SoakParentMessage>;

/** Starts bench/soak/worker-child.ts; its progress messages go to `onProgress`. */
export function startSoakWorker(
  args: SoakChildArguments,
  onProgress: (message: Extract<SoakChildMessage, { type: "progress" }>) => void,
): SoakWorker {
  return startBenchChild<SoakParentMessage, SoakChildMessage>(
    CHILD,
    args,
    `soak worker ${args.index}`,
    (message) => {
      if (message.type === "progress") onProgress(message);
    },
  );
}
