import type { Command } from "commander";
import type { Rota } from "../client.js";
import { tokensFromEnvironment } from "../dashboard/access.js";
import { type ServedDashboard, serveDashboard } from "../dashboard/serve.js";
import { type GlobalOptions, rotaFor, untilSignal } from "./context.js";
import { integerOption, logLine } from "./output.js";

export interface DashboardCliOptions {
  port?: number;
  host?: string;
  readOnly?: boolean;
}

export function registerDashboard(program: Command): void {
  program
    .command("dashboard")
    .description(
      "serve the web dashboard until Ctrl-C (a token is required: ROTA_DASHBOARD_TOKEN, or one generated and printed as a login link)",
    )
    .option(
      "--port <n>",
      "port to listen on (0: any free one)",
      (v) => integerOption("--port", v),
      8080,
    )
    .option(
      "--host <host>",
      "address to listen on; beyond loopback only with ROTA_DASHBOARD_TOKEN set",
      "127.0.0.1",
    )
    .option("--read-only", "show everything, change nothing")
    .action(async (options: DashboardCliOptions, command: Command) => {
      const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
      const stop = untilSignal();
      try {
        const served = await startDashboard(rota, options);
        const signal = await stop;
        logLine(`received ${signal}: stopping the dashboard`);
        await served.close();
      } finally {
        await rota.close();
      }
    });
}

/**
 * Serves the dashboard with the environment's tokens (or a generated one,
 * loopback only) and prints where: the login link carries the generated
 * token; a configured token is never printed.
 */
export async function startDashboard(
  rota: Rota,
  options: DashboardCliOptions,
): Promise<ServedDashboard> {
  const tokens = tokensFromEnvironment();
  const served = await serveDashboard(rota, {
    port: options.port ?? 8080,
    host: options.host ?? "127.0.0.1",
    readOnly: options.readOnly === true,
    ...(tokens.length > 0 ? { tokens } : {}),
  });
  logLine(
    tokens.length > 0
      ? `dashboard on ${served.origin}/ (log in with ROTA_DASHBOARD_TOKEN: ${served.origin}/?token=<token>)`
      : `dashboard on ${served.loginUrl}`,
  );
  return served;
}
