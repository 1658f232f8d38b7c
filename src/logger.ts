import { RotaError } from "./errors.js";

/**
 * How rota logs. The argument order is pino's, fields first and the message
 * second (`logger.info({ jobId: "42" }, "job failed")`), so a pino logger is
 * taken as it is, and so is any object with debug/info/warn/error of that
 * shape. Fields are what a line is searched by (jobId, queue, task, attempt,
 * workerId, scheduleId, epoch, holder); rota never puts a payload in them.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(fields: LogFields, message?: string): void;
  info(fields: LogFields, message?: string): void;
  warn(fields: LogFields, message?: string): void;
  error(fields: LogFields, message?: string): void;
  /** A logger adding `fields` to every line (pino's child); rota wraps a logger without one. */
  child?(fields: LogFields): Logger;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export interface StreamLoggerOptions {
  /** The least level written; default "info". */
  level?: LogLevel;
  /**
   * "text": `time level message {fields}` for a person at a terminal;
   * "json": one object a line (`level`, `time`, `msg` and the fields, as
   * pino writes them) for a log shipper. Default "text".
   */
  format?: "text" | "json";
  /** Where lines go; default stderr (stdout stays clean for the CLI's --json). */
  write?: (line: string) => void;
}

/** A logger writing lines of its own: rota's default, and the CLI's. */
export function streamLogger(options: StreamLoggerOptions = {}): Logger {
  const least = LEVELS.indexOf(options.level ?? "info");
  const json = options.format === "json";
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const at = (level: LogLevel) => {
    // A level below the least one is a no-op that builds nothing.
    if (LEVELS.indexOf(level) < least) return () => {};
    return (given: LogFields | string, text = "") => {
      // pino's (message) form too, from code that is not type-checked.
      const fields = typeof given === "string" ? {} : given;
      const message = typeof given === "string" ? given : text;
      const time = new Date().toISOString();
      if (json) {
        write(`${safeJson({ level, time, msg: message, ...fields })}\n`);
        return;
      }
      const rest = Object.keys(fields).length > 0 ? ` ${safeJson(fields)}` : "";
      write(`${time} ${level} ${message}${rest}\n`);
    };
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * A Rota's logger when it is given none: warnings and errors on stderr. An
 * application's own output stays its own; what rota says at info (a worker
 * started, a leader elected) is there for a logger given to it, and for the
 * CLI, which logs at info.
 */
export const defaultLogger: Logger = streamLogger({ level: "warn" });

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A logger that adds `fields` to every line: the given logger's own child
 * when it has one (pino's binds the fields once, cheaper than merging them
 * on every line), else a wrapper that merges them.
 */
export function childLogger(parent: Logger, fields: LogFields): Logger {
  if (typeof parent.child === "function") return parent.child(fields);
  // A string first is pino's (message) form, from code that is not type-checked.
  const merge = (more: LogFields | string | undefined) =>
    typeof more === "string" ? fields : { ...fields, ...more };
  const text = (more: LogFields | string | undefined, message: string | undefined) =>
    typeof more === "string" ? more : message;
  return {
    debug: (more, message) => parent.debug(merge(more), text(more, message)),
    info: (more, message) => parent.info(merge(more), text(more, message)),
    warn: (more, message) => parent.warn(merge(more), text(more, message)),
    error: (more, message) => parent.error(merge(more), text(more, message)),
    child: (more) => childLogger(parent, merge(more)),
  };
}

/** Checks a `logger` option: INVALID_OPTION naming the field and the shape expected. */
export function validateLogger(field: string, logger: unknown): Logger | undefined {
  if (logger === undefined) return undefined;
  const methods = ["debug", "info", "warn", "error"] as const;
  const ok =
    typeof logger === "object" &&
    logger !== null &&
    methods.every((m) => typeof (logger as Record<string, unknown>)[m] === "function");
  if (!ok) {
    throw new RotaError(
      "INVALID_OPTION",
      `${field} must be a logger with debug, info, warn and error methods taking (fields, message), as pino's do.`,
      { details: { field } },
    );
  }
  return logger as Logger;
}

/** JSON of log fields that never throws (a cycle, a bigint): the line is still written. */
function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v));
  } catch {
    return '"(fields not serializable)"';
  }
}
