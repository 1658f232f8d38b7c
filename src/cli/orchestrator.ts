import type { Command } from "commander";
import type { Rota } from "../client.js";
import type { Orchestrator, TickReport } from "../orchestrator/orchestrator.js";
import { type GlobalOptions, rotaFor, untilSignal } from "./context.js";
import { integerOption, logLine, printJson } from "./output.js";

interface OrchestratorCliOptions {
  tickMs?: string;
  leaseTtlMs?: string;
  once?: boolean;
  json?: boolean;
}

export function registerOrchestrator(program: Command): void {
  program
    .command("orchestrator")
    .description(
      "run the orchestrator (leader-elected: rescue, materialize schedules, reconcile, prune) until SIGINT/SIGTERM",
    )
    .option("--tick-ms <ms>", "time between ticks", "1000")
    .option("--lease-ttl-ms <ms>", "leader lease; a standby takes over within it", "15000")
    .option("--once", "run one tick (as leader if the lease is free), print its report, exit")
    .option("--json", "with --once: print the report as JSON")
    .action(async (options: OrchestratorCliOptions, command: Command) => {
      const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
      try {
        await rota.migrate();
        const orchestrator = createOrchestrator(rota, options);
        if (options.once) {
          orchestrator.runAllStepsNextTick();
          const report = await orchestrator.tick();
          await orchestrator.stop();
          if (options.json) printJson(describeReport(report));
          else logLine(summarize(report));
          if (report.errors.length > 0) process.exitCode = 1;
          return;
        }
        const stop = untilSignal();
        await orchestrator.start();
        logLine(`orchestrator ${orchestrator.holder} running; SIGINT/SIGTERM stops it`);
        const signal = await stop;
        logLine(`received ${signal}: stopping (the leader lease is released)`);
        await orchestrator.stop();
      } finally {
        await rota.close();
      }
    });
}

export function createOrchestrator(
  rota: Rota,
  options: { tickMs?: string; leaseTtlMs?: string },
): Orchestrator {
  return rota.orchestrator({
    ...(options.tickMs !== undefined ? { tickMs: integerOption("--tick-ms", options.tickMs) } : {}),
    ...(options.leaseTtlMs !== undefined
      ? { leaseTtlMs: integerOption("--lease-ttl-ms", options.leaseTtlMs) }
      : {}),
  });
}

function describeReport(report: TickReport) {
  return {
    leader: report.leader,
    epoch: report.epoch,
    rescued: report.rescued,
    batches: report.batches,
    materialized: report.materialized,
    reconciled: report.reconciled,
    pruned: report.pruned,
    database_unreachable: report.databaseUnreachable,
    errors: report.errors.map((e) => ({
      step: e.step,
      message: e.error instanceof Error ? e.error.message : String(e.error),
    })),
  };
}

function summarize(report: TickReport): string {
  if (!report.leader) return "tick: another orchestrator holds the lease; nothing done";
  const m = report.materialized;
  return [
    `tick as leader (epoch ${report.epoch}):`,
    `rescued ${report.rescued ? report.rescued.retried + report.rescued.failed + report.rescued.cancelled : "-"}`,
    `expired ${report.batches ? `${report.batches.expired} batch(es)` : "-"}`,
    `materialized ${m ? `${m.executions} execution(s) for ${m.schedules} schedule(s)` : "-"}`,
    `reconciled ${report.reconciled ? report.reconciled.reconciled : "-"}`,
    `repaired ${report.watchdog ? report.watchdog.repaired : "-"}`,
    `pruned ${report.pruned ?? "-"}`,
    ...report.errors.map(
      (e) => `error in ${e.step}: ${e.error instanceof Error ? e.error.message : String(e.error)}`,
    ),
  ].join(" ");
}
