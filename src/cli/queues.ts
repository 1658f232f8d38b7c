import type { Command } from "commander";
import { withRota } from "./context.js";
import { printJson, snake, snakeTable } from "./output.js";

export function registerQueues(program: Command): void {
  const queues = program.command("queues").description("list, pause and resume queues");

  queues
    .command("list")
    .description("every queue with jobs or a setting: paused, jobs by state, oldest waiting job")
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
        ...Object.fromEntries(states.map((s) => [s, q.counts[s] ?? 0])),
        oldest_available_s:
          q.oldestAvailableMs === null ? null : (q.oldestAvailableMs / 1000).toFixed(1),
      }));
      process.stdout.write(
        `${snakeTable(lines, ["name", "paused", ...states, "oldest_available_s"])}\n`,
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
