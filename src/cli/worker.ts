import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { RotaError } from "../errors.js";
import type { TaskDefinition, TaskList } from "../task.js";
import { type GlobalOptions, rotaFor } from "./context.js";
import { createOrchestrator, logOrchestrator } from "./orchestrator.js";
import { integerOption, logLine } from "./output.js";

interface WorkerCliOptions {
  tasks: string;
  queues?: string;
  concurrency: string;
  leaseMs?: string;
  gracefulStopMs?: string;
  orchestrate?: boolean;
}

export function registerWorker(program: Command): void {
  program
    .command("worker")
    .description(
      "run a worker over the tasks a module exports, until SIGINT/SIGTERM (graceful stop)",
    )
    .requiredOption(
      "--tasks <module>",
      "module exporting task definitions (default export or named exports)",
    )
    .option("--queues <list>", "comma-separated queues to serve (default: the tasks' queues)")
    .option("--concurrency <n>", "handlers running at once", "10")
    .option("--lease-ms <ms>", "lease length; a crashed worker's jobs are rescued after it")
    .option("--graceful-stop-ms <ms>", "how long running jobs may finish on stop")
    .option(
      "--orchestrate",
      "also run an orchestrator in this process (leader-elected: schedules, rescue, pruning)",
    )
    .action(async (options: WorkerCliOptions, command: Command) => {
      const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
      try {
        const tasks = await loadTasks(options.tasks);
        await rota.migrate();
        const worker = rota.worker({
          tasks,
          queues: options.queues?.split(",").map((q) => q.trim()),
          concurrency: integerOption("--concurrency", options.concurrency),
          leaseMs:
            options.leaseMs === undefined
              ? undefined
              : integerOption("--lease-ms", options.leaseMs),
          gracefulStopMs:
            options.gracefulStopMs === undefined
              ? undefined
              : integerOption("--graceful-stop-ms", options.gracefulStopMs),
          handleSignals: true,
        });
        await worker.start();
        const orchestrator = options.orchestrate ? createOrchestrator(rota, {}) : null;
        const offs = orchestrator ? logOrchestrator(rota, orchestrator) : [];
        await orchestrator?.start();
        logLine(
          `worker ${worker.id} running (${options.tasks}); SIGINT/SIGTERM stops it gracefully`,
        );
        await new Promise<void>((done) => {
          const stopped = () => done();
          process.once("SIGINT", stopped);
          process.once("SIGTERM", stopped);
        });
        await Promise.all([worker.stop(), orchestrator?.stop()]);
        for (const off of offs) off();
        logLine(`worker ${worker.id} stopped`);
      } finally {
        await rota.close();
      }
    });
}

/** Imports a module and collects its task definitions (default export list/map, or named definitions). */
export async function loadTasks(path: string): Promise<TaskList> {
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(resolve(path)).href);
  } catch (cause) {
    throw new RotaError(
      "INVALID_OPTION",
      `Cannot load the tasks module ${path}: ${(cause as Error).message}`,
      {
        cause,
        details: { field: "--tasks" },
      },
    );
  }
  if (module.default && typeof module.default === "object") return module.default as TaskList;
  const definitions = Object.values(module).filter(
    (value): value is TaskDefinition =>
      typeof value === "object" &&
      value !== null &&
      typeof (value as TaskDefinition).handler === "function",
  );
  if (definitions.length === 0) {
    throw new RotaError(
      "INVALID_OPTION",
      `The tasks module ${path} exports no tasks: export defineTask(...) definitions, or a default list or map of them.`,
      { details: { field: "--tasks" } },
    );
  }
  return definitions;
}
