import type { Command } from "commander";
import { Rota } from "../client.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../dev/embedded.js";
import { RotaError } from "../errors.js";
import { type Logger, type LogLevel, streamLogger } from "../logger.js";

/** Options every command accepts (see main.ts). */
export interface GlobalOptions {
  databaseUrl?: string;
  schema?: string;
  logLevel?: string;
  logFormat?: string;
  transactionPooler?: boolean;
  listenUrl?: string;
}

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
const LOG_FORMATS = ["text", "json"] as const;

/**
 * The logger of the long-running commands (worker, orchestrator, dev,
 * dashboard), from --log-level and --log-format: what their workers and
 * orchestrators log, on stderr.
 */
export function cliLogger(options: GlobalOptions): Logger {
  const level = options.logLevel ?? "info";
  const format = options.logFormat ?? "text";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new RotaError(
      "INVALID_OPTION",
      `--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${level}".`,
      { details: { flag: "--log-level" } },
    );
  }
  if (!(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new RotaError(
      "INVALID_OPTION",
      `--log-format must be one of ${LOG_FORMATS.join(", ")}, got "${format}".`,
      { details: { flag: "--log-format" } },
    );
  }
  return streamLogger({ level: level as LogLevel, format: format as "text" | "json" });
}

/** The URL from --database-url, else DATABASE_URL, else none. */
export function databaseUrlFrom(options: GlobalOptions): string | undefined {
  const url = options.databaseUrl ?? process.env.DATABASE_URL;
  return url === undefined || url === "" ? undefined : url;
}

/** A Rota for commands that need an existing database (migrate, doctor, worker). */
export function rotaFor(options: GlobalOptions): Rota {
  const url = databaseUrlFrom(options);
  if (url === undefined) {
    throw new RotaError(
      "INVALID_DATABASE_URL",
      "No database URL: pass --database-url postgres://… or set DATABASE_URL. (`rota dev` starts an embedded PostgreSQL when none is given.)",
      { details: { field: "databaseUrl" } },
    );
  }
  return new Rota({
    connection: url,
    schema: options.schema,
    logger: cliLogger(options),
    ...(options.transactionPooler ? { transactionPooler: true } : {}),
    ...(options.listenUrl !== undefined ? { listenConnection: options.listenUrl } : {}),
  });
}

/** Runs `fn` with a Rota for the command's global options, closing it after. */
export async function withRota<T>(command: Command, fn: (rota: Rota) => Promise<T>): Promise<T> {
  const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
  try {
    return await fn(rota);
  } finally {
    await rota.close();
  }
}

/**
 * The database URL to use, starting the embedded PostgreSQL when none is
 * given. The returned `embedded` must be stopped by the caller, last.
 */
export async function urlOrEmbedded(
  options: GlobalOptions,
  log: (line: string) => void,
): Promise<{ url: string; embedded: EmbeddedPostgres | null }> {
  const url = databaseUrlFrom(options);
  if (url !== undefined) return { url, embedded: null };
  log("no database URL given: starting the embedded PostgreSQL (data in .rota/pgdata)");
  const embedded = await startEmbeddedPostgres();
  log(`embedded PostgreSQL listening on 127.0.0.1:${embedded.port}`);
  return { url: embedded.url, embedded };
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        process.stderr.write(`rota: second ${signal}, exiting now\n`);
        process.exit(130);
      }
      received = true;
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
