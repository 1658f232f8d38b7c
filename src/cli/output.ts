import { isRotaError, RotaError } from "../errors.js";

/** Progress and messages go to stderr so stdout stays clean for --json. */
export function logLine(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints a failure the way the command was asked to speak, and sets the exit code. */
export function reportFailure(error: unknown, json: boolean): void {
  const body = isRotaError(error)
    ? { code: error.code, message: error.message }
    : { code: "UNEXPECTED", message: error instanceof Error ? error.message : String(error) };
  if (json) printJson({ ok: false, error: body });
  else logLine(`rota: ${body.message} [${body.code}]`);
  if (!isRotaError(error) && error instanceof Error && process.env.ROTA_DEBUG) {
    logLine(error.stack ?? "");
  }
  process.exitCode = 1;
}

/** Rows as an aligned text table (dates as ISO-8601, null as blank). */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) =>
    v instanceof Date
      ? v.toISOString()
      : v === null || v === undefined
        ? ""
        : typeof v === "object"
          ? JSON.stringify(v)
          : String(v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join("\n");
}

/** An ISO-8601 option value as a Date, or a coded error naming the flag. */
export function isoDate(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new RotaError("INVALID_OPTION", `${flag} must be an ISO-8601 time, got "${value}".`, {
      details: { flag },
    });
  }
  return date;
}

/** A whole-number option value, or a coded error naming the flag. */
export function integerOption(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n)) {
    throw new RotaError("INVALID_OPTION", `${flag} must be a whole number, got "${value}".`, {
      details: { flag },
    });
  }
  return n;
}

/** The CLI speaks snake_case, in JSON and in tables alike (as `rota jobs` does). */
export function snake(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snake);
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [
      key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      // A payload is the caller's data: its keys are left as they are.
      key === "payload" || key.endsWith("Payload") ? v : snake(v),
    ]),
  );
}

/** Rows as a table whose columns are named as in the JSON. */
export function snakeTable(rows: readonly object[], columns: string[]): string {
  return table(snake(rows) as Record<string, unknown>[], columns);
}

/**
 * Progress of a long operation on stderr: on a terminal, one line redrawn in
 * place (with a bar when the total is known); elsewhere, a line at most
 * every `everyMs` and one at the end, so logs stay short.
 */
export function progress(label: string, options: { everyMs?: number } = {}) {
  const tty = process.stderr.isTTY === true;
  const everyMs = options.everyMs ?? (tty ? 100 : 5_000);
  let last = 0;
  const render = (done: number, fraction: number | null) => {
    const count = done.toLocaleString("en-US");
    if (fraction === null) return `${label}: ${count}`;
    const width = 30;
    const filled = Math.round(Math.min(1, fraction) * width);
    return `${label}: [${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.floor(
      Math.min(1, fraction) * 100,
    )}% ${count}`;
  };
  return {
    update(done: number, fraction: number | null = null): void {
      const now = Date.now();
      if (now - last < everyMs) return;
      last = now;
      if (tty) process.stderr.write(`\r${render(done, fraction)}`);
      else logLine(render(done, fraction));
    },
    end(done: number, fraction: number | null = null): void {
      if (tty) process.stderr.write(`\r${render(done, fraction)}\n`);
      else logLine(render(done, fraction));
    },
  };
}
