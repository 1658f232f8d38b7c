import type { Command } from "commander";
import { migrationLabel } from "../db/migrate.js";
import { type GlobalOptions, rotaFor } from "./context.js";
import { logLine, printJson } from "./output.js";

export function registerMigrate(program: Command): void {
  program
    .command("migrate")
    .description("apply pending schema migrations (safe to run from many processes at once)")
    .option("--json", "print the result as JSON")
    .action(async (options: { json?: boolean }, command: Command) => {
      const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
      try {
        const applied = await rota.migrate((m) => logLine(`applied ${migrationLabel(m)}`));
        const status = await rota.schemaStatus();
        if (options.json)
          printJson({ ok: true, schema: rota.schema, applied, version: status.version });
        else
          logLine(
            applied.length === 0
              ? `schema "${rota.schema}" is up to date at version ${status.version}`
              : `schema "${rota.schema}" migrated to version ${status.version} (${applied.length} applied)`,
          );
      } finally {
        await rota.close();
      }
    });
}
