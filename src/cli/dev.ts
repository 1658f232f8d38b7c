import type { Command } from "commander";
import { Rota } from "../client.js";
import { DEFAULT_SCHEMA, validateSchemaName } from "../config.js";
import { migrationLabel } from "../db/migrate.js";
import { cliLogger, type GlobalOptions, untilSignal, urlOrEmbedded } from "./context.js";
import { startDashboard } from "./dashboard.js";
import { startDemo } from "./demo.js";
import { integerOption, logLine } from "./output.js";

export function registerDev(program: Command): void {
  program
    .command("dev")
    .description(
      "run rota locally: PostgreSQL (embedded when no URL is given), migrations, an orchestrator and the demo, until Ctrl-C",
    )
    .option("--no-demo", "do not run the demo worker and jobs")
    .option("--no-dashboard", "do not serve the dashboard")
    .option(
      "--port <n>",
      "the dashboard's port (0: any free one)",
      (v) => integerOption("--port", v),
      8080,
    )
    .action(
      async (options: { demo: boolean; dashboard: boolean; port: number }, command: Command) => {
        const globals = command.optsWithGlobals<GlobalOptions>();
        // Bad input is refused before a server is started for it.
        const schema = validateSchemaName(globals.schema ?? DEFAULT_SCHEMA);
        const logger = cliLogger(globals);
        const stop = untilSignal();
        const { url, embedded } = await urlOrEmbedded(globals, logLine);
        let rota: Rota | null = null;
        try {
          rota = new Rota({ connection: url, schema, logger });
          const applied = await rota.migrate((m) =>
            logLine(`applied migration ${migrationLabel(m)}`),
          );
          const status = await rota.schemaStatus();
          logLine(
            `schema "${rota.schema}" at version ${status.version}${applied.length ? ` (${applied.length} applied now)` : ""}`,
          );
          const orchestrator = rota.orchestrator();
          await orchestrator.start();
          const demo = options.demo ? await startDemo(rota, logLine) : null;
          const dashboard = options.dashboard
            ? await startDashboard(rota, { port: options.port })
            : null;
          logLine(
            `rota dev is running on ${embedded ? embedded.url : "the given database"}; Ctrl-C stops it`,
          );
          const signal = await stop;
          logLine(`received ${signal}: stopping`);
          await dashboard?.close();
          await demo?.stop();
          await orchestrator.stop();
        } finally {
          await rota?.close();
          if (embedded) {
            await embedded.stop();
            logLine("embedded PostgreSQL stopped");
          }
        }
      },
    );
}
