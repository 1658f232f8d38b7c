import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import type { SweepDefinition } from "../capacity/sweeps.js";
import { RotaError } from "../errors.js";
import { isTaskDefinition, type TaskList } from "../task.js";
import { type GlobalOptions, rotaFor } from "./context.js";
import { createOrchestrator } from "./orchestrator.js";
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
      "module exporting task definitions (default export or named exports), and sweeps (a named export `sweeps`: an array of sweep definitions)",
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
        const { tasks, sweeps } = await loadWorkerModule(options.tasks);
        await rota.migrate();
        for (const sweep of sweeps) await rota.sweeps.define(sweep);
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
        logLine(`worker ${worker.id} stopped`);
      } finally {
        await rota.close();
      }
    });
}

/**
 * Imports a module and collects its task definitions (default export list or
 * map, or named definitions) and its sweeps (the named export `sweeps`).
 */
export async function loadWorkerModule(
  path: string,
): Promise<{ tasks: TaskList; sweeps: SweepDefinition[] }> {
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
  const sweeps = module.sweeps ?? [];
  if (!Array.isArray(sweeps)) {
    throw new RotaError(
      "INVALID_OPTION",
      `The tasks module ${path} exports "sweeps" that is not an array of sweep definitions.`,
      { details: { field: "--tasks" } },
    );
  }
  if (module.default && typeof module.default === "object") {
    return { tasks: module.default as TaskList, sweeps };
  }
  const definitions = Object.values(module).filter(isTaskDefinition);
  if (definitions.length === 0 && sweeps.length === 0) {
    throw new RotaError(
      "INVALID_OPTION",
      `The tasks module ${path} exports no tasks: export defineTask(...) or defineBatchTask(...) definitions, or a default list or map of them (or sweeps).`,
      { details: { field: "--tasks" } },
    );
  }
  return { tasks: definitions, sweeps };
}
