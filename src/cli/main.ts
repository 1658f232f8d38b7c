import { Command, CommanderError } from "commander";
import { registerBatches } from "./batches.js";
import { registerBench } from "./bench.js";
import { registerCapture } from "./capture.js";
import { registerDashboard } from "./dashboard.js";
import { registerDev } from "./dev.js";
import { registerDoctor } from "./doctor.js";
import { registerJobs } from "./jobs.js";
import { registerMigrate } from "./migrate.js";
import { registerOrchestrator } from "./orchestrator.js";
import { reportFailure } from "./output.js";
import { registerQueues } from "./queues.js";
import { registerSchedules } from "./schedules.js";
import { registerSimulate } from "./simulate.js";
import { registerSweeps } from "./sweeps.js";
import { registerWorker } from "./worker.js";
import { registerWorkers } from "./workers.js";

export function buildProgram(): Command {
  const program = new Command("rota")
    .description("rota: a durable job queue and recurring-job scheduler on PostgreSQL")
    .option("--database-url <url>", "PostgreSQL URL (default: $DATABASE_URL)")
    .option("--schema <name>", "schema holding rota's tables", "rota")
    .option("--log-level <level>", "least level logged on stderr: debug, info, warn, error", "info")
    .option("--log-format <format>", "log lines as text, or json (one object a line)", "text")
    .option(
      "--transaction-pooler",
      "the URL goes through a pooler in transaction mode (PgBouncer): unnamed statements, no session settings (docs/connections.md)",
    )
    .option(
      "--listen-url <url>",
      "a URL straight to PostgreSQL for the workers' LISTEN, when --database-url goes through a transaction pooler",
    )
    .showHelpAfterError()
    .exitOverride();
  registerMigrate(program);
  registerDoctor(program);
  registerDev(program);
  registerWorker(program);
  registerJobs(program);
  registerQueues(program);
  registerBatches(program);
  registerSchedules(program);
  registerSimulate(program);
  registerSweeps(program);
  registerCapture(program);
  registerOrchestrator(program);
  registerDashboard(program);
  registerWorkers(program);
  registerBench(program);
  // Every subcommand shares the parent's error handling.
  const all = (command: Command): Command[] => [command, ...command.commands.flatMap(all)];
  for (const command of all(program)) command.showHelpAfterError().exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const json = argv.includes("--json");
  try {
    if (argv.length <= 2) {
      program.outputHelp();
      process.exitCode = 2;
      return;
    }
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version requests exit 0; usage errors already printed with help.
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    reportFailure(error, json);
  }
}
