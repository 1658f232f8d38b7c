import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { RotaError } from "../errors.js";
import type { TaskDefinition, TaskList } from "../task.js";
import { type GlobalOptions, rotaFor } from "./context.js";
import { logLine } from "./output.js";

interface WorkerCliOptions {
  tasks: string;
  queues?: string;
  concurrency: string;
  leaseMs?: string;
  gracefulStopMs?: string;
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
    .action(async (options: WorkerCliOptions, command: Command) => {
      const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
      try {
        const tasks = await loadTasks(options.tasks);
        await rota.migrate();
        const worker = rota.worker({
          tasks,
          queues: options.queues?.split(",").map((q) => q.trim()),
          concurrency: integer("--concurrency", options.concurrency),
          leaseMs:
            options.leaseMs === undefined ? undefined : integer("--lease-ms", options.leaseMs),
          gracefulStopMs:
            options.gracefulStopMs === undefined
              ? undefined
              : integer("--graceful-stop-ms", options.gracefulStopMs),
          handleSignals: true,
        });
        await worker.start();
        logLine(
          `worker ${worker.id} running (${options.tasks}); SIGINT/SIGTERM stops it gracefully`,
        );
        await new Promise<void>((done) => {
          const stopped = () => done();
          process.once("SIGINT", stopped);
          process.once("SIGTERM", stopped);
        });
        await worker.stop();
        logLine(`worker ${worker.id} stopped`);
      } finally {
        await rota.close();
      }
    });
}

function integer(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) {
    throw new RotaError("INVALID_OPTION", `${flag} must be a whole number, got "${value}".`, {
      details: { flag },
    });
  }
  return n;
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
