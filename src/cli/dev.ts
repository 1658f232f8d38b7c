import type { Command } from "commander";
import { Rota } from "../client.js";
import { DEFAULT_SCHEMA, validateSchemaName } from "../config.js";
import { migrationLabel } from "../db/migrate.js";
import { type GlobalOptions, untilSignal, urlOrEmbedded } from "./context.js";
import { startDemo } from "./demo.js";
import { logOrchestrator } from "./orchestrator.js";
import { logLine } from "./output.js";

export function registerDev(program: Command): void {
  program
    .command("dev")
    .description(
      "run rota locally: PostgreSQL (embedded when no URL is given), migrations, an orchestrator and the demo, until Ctrl-C",
    )
    .option("--no-demo", "do not run the demo worker and jobs")
    .action(async (options: { demo: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      // Bad input is refused before a server is started for it.
      const schema = validateSchemaName(globals.schema ?? DEFAULT_SCHEMA);
      const stop = untilSignal();
      const { url, embedded } = await urlOrEmbedded(globals, logLine);
      let rota: Rota | null = null;
      try {
        rota = new Rota({ connection: url, schema });
        const applied = await rota.migrate((m) =>
          logLine(`applied migration ${migrationLabel(m)}`),
        );
        const status = await rota.schemaStatus();
        logLine(
          `schema "${rota.schema}" at version ${status.version}${applied.length ? ` (${applied.length} applied now)` : ""}`,
        );
        const orchestrator = rota.orchestrator();
        const offs = logOrchestrator(rota, orchestrator);
        await orchestrator.start();
        const demo = options.demo ? await startDemo(rota, logLine) : null;
        logLine(
          `rota dev is running on ${embedded ? embedded.url : "the given database"}; Ctrl-C stops it`,
        );
        const signal = await stop;
        logLine(`received ${signal}: stopping`);
        await demo?.stop();
        await orchestrator.stop();
        for (const off of offs) off();
      } finally {
        await rota?.close();
        if (embedded) {
          await embedded.stop();
          logLine("embedded PostgreSQL stopped");
        }
      }
    });
}
