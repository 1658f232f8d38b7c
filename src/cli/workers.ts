import type { Command } from "commander";
import type { Rota } from "../client.js";
import { type GlobalOptions, rotaFor, untilSignal, withRota } from "./context.js";
import { integerOption, printJson, snake, table } from "./output.js";

export function registerWorkers(program: Command): void {
  const workers = program.command("workers").description("the workers seen lately");
  workers
    .command("list")
    .description("workers that reported within --seen-within-ms (default a minute), newest first")
    .option(
      "--seen-within-ms <ms>",
      "how recently",
      (v) => integerOption("--seen-within-ms", v),
      60_000,
    )
    .option("--json", "print a JSON array")
    .action(async (options: { seenWithinMs: number; json?: boolean }, command: Command) => {
      const rows = await withRota(command, (rota) =>
        rota.workers.list({ seenWithinMs: options.seenWithinMs }),
      );
      if (options.json) {
        printJson(snake(rows));
        return;
      }
      process.stdout.write(
        `${table(snake(rows) as Record<string, unknown>[], ["id", "queues", "concurrency", "running", "started_at", "last_seen_at", "stopped_at"])}\n`,
      );
    });

  program
    .command("top")
    .description(
      "a live view of the leader, each queue with its jobs finished in the last five minutes, and the workers, redrawn until Ctrl-C",
    )
    .option("--every-ms <ms>", "redraw interval", (v) => integerOption("--every-ms", v), 2_000)
    .option("--once", "draw once and exit (also what happens when stdout is not a terminal)")
    .option("--json", "print one view as a JSON object (leader, queues, workers) and exit")
    .action(
      async (options: { everyMs: number; once?: boolean; json?: boolean }, command: Command) => {
        const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
        try {
          if (options.json) {
            printJson(snake(await topData(rota)));
            return;
          }
          const live = options.once !== true && process.stdout.isTTY === true;
          if (!live) {
            process.stdout.write(`${renderTop(await topData(rota))}\n`);
            return;
          }
          let stopped = false;
          void untilSignal().then(() => {
            stopped = true;
          });
          while (!stopped) {
            const view = renderTop(await topData(rota));
            // Clear the screen and draw from the top left.
            process.stdout.write(`\u001b[2J\u001b[H${view}\n\n(Ctrl-C stops)\n`);
            await new Promise((resolve) => setTimeout(resolve, options.everyMs));
          }
        } finally {
          await rota.close();
        }
      },
    );
}

/** What `rota top` shows: the leader, each queue with its counts and the jobs finished in the last five minutes, the workers. */
export interface TopData {
  at: Date;
  leader: { holder: string; epoch: number; valid: boolean } | null;
  queues: {
    queue: string;
    paused: boolean;
    available: number;
    scheduled: number;
    running: number;
    failed: number;
    /** Jobs that succeeded, and that failed for good, in the last five minutes. */
    lastFiveMinutes: { succeeded: number; failed: number };
    /** How long its oldest available job has waited since it came due (null: none waits). */
    oldestWaitMs: number | null;
  }[];
  workers: {
    worker: string;
    queues: string[];
    running: number;
    concurrency: number;
    lastSeenAt: Date;
    stopped: boolean;
  }[];
}

export async function topData(rota: Rota): Promise<TopData> {
  const [queues, minutes, workers, diagnosis, now] = await Promise.all([
    rota.queues.list(),
    rota.queues.throughput({ minutes: 5 }),
    rota.workers.list({ seenWithinMs: 60_000 }),
    rota.diagnose(),
    rota.clock.now(),
  ]);
  // Over the last five minutes: one minute's count jumps as minutes turn.
  const rate = (queue: string, pick: (m: (typeof minutes)[number]) => number) =>
    minutes.filter((m) => m.queue === queue).reduce((sum, m) => sum + pick(m), 0);
  const leader = diagnosis.leader;
  // A queue whose jobs all finished (and were deleted) still shows its rate.
  const names = [...new Set([...queues.map((q) => q.name), ...minutes.map((m) => m.queue)])].sort();
  return {
    at: now,
    leader: leader ? { holder: leader.holder, epoch: leader.epoch, valid: leader.valid } : null,
    queues: names.map((name) => {
      const q = queues.find((each) => each.name === name);
      return {
        queue: name,
        paused: q?.paused ?? false,
        available: q?.counts.available ?? 0,
        scheduled: q?.counts.scheduled ?? 0,
        running: q?.counts.running ?? 0,
        failed: q?.counts.failed ?? 0,
        lastFiveMinutes: {
          succeeded: rate(name, (m) => m.succeeded),
          failed: rate(name, (m) => m.failed),
        },
        oldestWaitMs: q?.oldestAvailableMs ?? null,
      };
    }),
    workers: workers.map((w) => ({
      worker: w.id,
      queues: w.queues,
      running: w.running,
      concurrency: w.concurrency,
      lastSeenAt: w.lastSeenAt,
      stopped: w.stoppedAt !== null,
    })),
  };
}

/** `rota top` as text: a header line, the queues' table, the workers' table. */
export function renderTop(data: TopData): string {
  const { leader } = data;
  const header = `rota top · ${data.at.toISOString().slice(0, 19)}Z · leader ${
    leader ? `${leader.holder} (epoch ${leader.epoch}${leader.valid ? "" : ", expired"})` : "none"
  } · ${data.workers.filter((w) => !w.stopped).length} worker(s)`;
  const queueRows = data.queues.map((q) => ({
    queue: q.queue,
    paused: q.paused ? "paused" : "",
    available: q.available,
    scheduled: q.scheduled,
    running: q.running,
    failed: q.failed,
    done_5m: q.lastFiveMinutes.succeeded,
    failed_5m: q.lastFiveMinutes.failed,
    oldest_wait_s: q.oldestWaitMs === null ? "" : (q.oldestWaitMs / 1_000).toFixed(1),
  }));
  const workerRows = data.workers.map((w) => ({
    worker: w.worker,
    queues: w.queues.join(","),
    running: `${w.running}/${w.concurrency}`,
    seen_s_ago: ((data.at.getTime() - w.lastSeenAt.getTime()) / 1_000).toFixed(0),
    state: w.stopped ? "stopped" : "running",
  }));
  return [
    header,
    "",
    queueRows.length > 0
      ? table(queueRows, Object.keys(queueRows[0] as object))
      : "no queue has jobs or settings yet",
    "",
    workerRows.length > 0
      ? table(workerRows, Object.keys(workerRows[0] as object))
      : "no worker seen in the last minute",
  ].join("\n");
}
