/**
 * One worker process of the soak (bench/soak/run.ts starts --workers of
 * them): a rota worker on the soak's queue with a no-op handler. Each handler
 * takes its start time (nowMs(), comparable across processes on one machine:
 * see time.ts) less the enqueue time stamped in its payload, and every
 * second the child sends those samples, and how many outcomes were written
 * (job:run:success) in each minute of the run, to the parent.
 *
 *   node --import tsx bench/soak/worker-child.ts '{"databaseUrl":…,"schema":…,"concurrency":10}'
 */
import { createRota } from "../../src/index.js";
import { sendToParent } from "../child-process.js";
import { nowMs } from "../time.js";
import { SOAK_QUEUE, SOAK_RETENTION, SOAK_TASK } from "./load.js";
import type { SoakChildArguments, SoakChildMessage, SoakParentMessage } from "./protocol.js";

const SEND_EVERY_MS = 1_000;

/** To the parent, typed. */
const send = (message: SoakChildMessage) => sendToParent(message);

async function main(): Promise<void> {
  if (!process.send) throw new Error("worker-child.ts runs only as a child of bench/soak/run.ts");
  // The parent gone (interrupted): nothing left to report to.
  process.on("disconnect", () => process.exit(0));
  const args = JSON.parse(process.argv[2] ?? "{}") as SoakChildArguments;
  const rota = createRota({
    connection: args.databaseUrl,
    schema: args.schema,
    retention: SOAK_RETENTION,
  });
  let startAt = 0;
  let stamps: number[] = [];
  let latencies: number[] = [];
  let completed: Record<number, number> = {};
  rota.events.on("job:run:success", () => {
    const minute = Math.floor((nowMs() - startAt) / 60_000);
    completed[minute] = (completed[minute] ?? 0) + 1;
  });
  const worker = rota.worker({
    tasks: {
      [SOAK_TASK]: async (payload) => {
        const at = nowMs();
        const t = (payload as { t: number }).t;
        stamps.push(t);
        latencies.push(at - t);
      },
    },
    queues: [SOAK_QUEUE],
    concurrency: args.concurrency,
  });
  const flush = async () => {
    const message: SoakChildMessage = { type: "progress", stamps, latencies, completed };
    stamps = [];
    latencies = [];
    completed = {};
    await send(message);
  };
  let timer: NodeJS.Timeout | null = null;
  rota.events.on("worker:error", ({ during, error }) => {
    process.stderr.write(`soak worker ${args.index}: ${during} failed: ${String(error)}\n`);
  });

  process.on("message", (message: SoakParentMessage) => {
    if (message.type === "start") {
      startAt = message.at;
      timer = setInterval(() => void flush(), SEND_EVERY_MS);
    } else if (message.type === "stop") {
      void (async () => {
        if (timer) clearInterval(timer);
        await worker.stop();
        await flush();
        await rota.close();
        await send({ type: "stopped" });
        process.exit(0);
      })().catch(fail);
    }
  });
  // Started before the run does (nothing is enqueued yet): listening and idle at its start.
  await worker.start();
  await send({ type: "ready" });
}

function fail(error: unknown): void {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  void send({ type: "error", message }).finally(() => process.exit(1));
}

main().catch(fail);
