import { isRotaError } from "../errors.js";

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
