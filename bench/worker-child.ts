/**
 * One worker process of the process_2proc and process_limited workloads.
 * The parent (bench/workloads/process.ts) starts two, each with the same
 * adapter; they attach to the state the parent set up, start consuming on
 * "start", and report how many handlers they have started (and when the
 * latest started) over the IPC channel. For process_limited (`handlerMs`)
 * each handler sleeps, and the child sends every handler's start and end
 * once its worker has stopped.
 *
 *   node --import tsx bench/worker-child.ts '{"system":…,"config":…,"env":…,"concurrency":10}'
 */
import { sendToParent } from "./child-process.js";
import type { ChildArguments, ChildMessage, ParentMessage } from "./child-protocol.js";
import { systemFactory } from "./systems/index.js";
import type { RunningWorker } from "./systems/types.js";
import { nowMs, sleep } from "./time.js";

const REPORT_EVERY_MS = 5;

/** To the parent, typed. */
const send = (message: ChildMessage) => sendToParent(message);

async function main(): Promise<void> {
  if (!process.send)
    throw new Error(
      "worker-child.ts runs only as a child of bench/run.ts (it needs an IPC channel)",
    );
  const args = JSON.parse(process.argv[2] ?? "{}") as ChildArguments;
  const system = (await systemFactory(args.system, args.config))(args.env);
  await system.attach();

  let count = 0;
  let lastAt = 0;
  let reported = 0;
  // The handlers' times are kept here and sent once, at the end, rather than
  // written with the database's clock_timestamp() to a side table: that would
  // be two more statements in every 1 ms handler, on the database whose claims
  // the limit is enforced in, stretching the handlers it measures. nowMs(),
  // not Date.now(): whole milliseconds would tie a slot's end with the next
  // start in it (and ties count the end first, which could hide an overlap).
  // nowMs() has sub-microsecond steps and agrees between two processes on one
  // machine to a few microseconds (time.ts), far less than the round trips
  // between one job's end and the next's start (its outcome written, a claim).
  const starts: number[] = [];
  const ends: number[] = [];
  let worker: Promise<RunningWorker> | null = null;
  let reporter: NodeJS.Timeout | null = null;

  const report = () => {
    if (count === reported) return;
    reported = count;
    void send({ type: "count", count, lastAt });
  };

  process.on("message", (message: ParentMessage) => {
    if (message.type === "start") {
      reporter = setInterval(report, REPORT_EVERY_MS);
      const started = () => {
        count++;
        lastAt = nowMs();
      };
      const handlerMs = args.handlerMs;
      worker = system.startWorker({
        concurrency: args.concurrency,
        onJob:
          handlerMs === undefined
            ? started
            : async () => {
                started();
                starts.push(lastAt);
                await sleep(handlerMs);
                ends.push(nowMs());
              },
      });
      worker.catch(fail);
    } else if (message.type === "stop") {
      void (async () => {
        if (reporter) clearInterval(reporter);
        report();
        await (await worker)?.stop();
        if (args.handlerMs !== undefined) await send({ type: "handlers", starts, ends });
        await system.teardown();
        await send({ type: "stopped" });
        // Some libraries keep timers or sockets after stopping; this process is done.
        process.exit(0);
      })().catch(fail);
    }
  });
  await send({ type: "ready" });
}

function fail(error: unknown): void {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  void send({ type: "error", message }).finally(() => process.exit(1));
}

main().catch(fail);
