import type { Command } from "commander";
import { withRota } from "./context.js";
import { integerOption, printJson, snake, table } from "./output.js";

export function registerQueues(program: Command): void {
  const queues = program
    .command("queues")
    .description("list queues, pause and resume them, set their concurrency limits");

  queues
    .command("list")
    .description(
      "every queue with jobs or a setting: paused, limit, jobs by state, waiting for the limit, oldest waiting job",
    )
    .option("--json", "print a JSON array")
    .action(async (options: { json?: boolean }, command: Command) => {
      const rows = await withRota(command, (rota) => rota.queues.list());
      if (options.json) {
        printJson(snake(rows));
        return;
      }
      const states = ["available", "scheduled", "running", "failed"];
      const lines = rows.map((q) => ({
        name: q.name,
        paused: q.paused,
        limit: q.limit ?? "none",
        ...Object.fromEntries(states.map((s) => [s, q.counts[s] ?? 0])),
        waiting_for_limit: q.waitingForLimit,
        oldest_available_s:
          q.oldestAvailableMs === null ? null : (q.oldestAvailableMs / 1000).toFixed(1),
      }));
      process.stdout.write(
        `${table(lines, ["name", "paused", "limit", ...states, "waiting_for_limit", "oldest_available_s"])}\n`,
      );
    });

  queues
    .command("limit <queue> <limit>")
    .description(
      'at most LIMIT jobs of QUEUE run at once across all workers ("none" lifts the limit)',
    )
    .option("--json", "print JSON")
    .action(async (queue: string, limit: string, options: { json?: boolean }, command: Command) => {
      const value = parseLimit(limit);
      const set = await withRota(command, (rota) => rota.queues.setLimit(queue, value));
      if (options.json) printJson(snake(set));
      else
        process.stdout.write(
          set.limit === null
            ? `queue "${set.name}" has no concurrency limit\n`
            : `queue "${set.name}" runs at most ${set.limit} jobs at once\n`,
        );
    });

  for (const [verb, description] of [
    ["pause", "stop claiming from QUEUE (enqueues go on; running jobs finish; nothing is lost)"],
    ["resume", "claim from QUEUE again"],
  ] as const) {
    queues
      .command(`${verb} <queue>`)
      .description(description)
      .option("--json", "print JSON")
      .action(async (queue: string, options: { json?: boolean }, command: Command) => {
        const state = await withRota(command, (rota) =>
          verb === "pause" ? rota.queues.pause(queue) : rota.queues.resume(queue),
        );
        if (options.json) printJson(snake(state));
        else process.stdout.write(`queue "${state.name}" ${state.paused ? "paused" : "resumed"}\n`);
      });
  }
}

/** A limit as typed: "none", or a whole number (its range is setLimit's to check). */
function parseLimit(text: string): number | null {
  return text === "none" ? null : integerOption("LIMIT", text);
}
