import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { RotaError } from "../errors.js";
import { withRota } from "./context.js";
import { integerOption, isoDate, progress, snakeTable, table } from "./output.js";

type Print = (json: boolean, value: unknown, text: () => string) => void;

/**
 * `rota schedules targets add|rm|list|count` and `rota schedules plan`: the
 * keys a schedule fans out to, and how one cadence falls across its window.
 */
export function registerScheduleTargets(schedules: Command, print: Print): void {
  const targets = schedules
    .command("targets")
    .description("the keys a schedule fans out to: add, rm, list, count");

  targets
    .command("add <name>")
    .description(
      "add targets, one key per line, from --file or stdin (-); adding a key twice changes nothing",
    )
    .option("--file <file>", 'a file of keys, one per line ("-" for stdin)')
    .option("--json", 'print {"added", "existing", "updated"}')
    .action(async (name: string, options, command: Command) => {
      const source = keyLines(options.file);
      const shown = progress(`targets add ${name}`);
      const result = await withRota(command, (rota) =>
        rota.schedules.targets.add(name, source.keys, {
          onProgress: (done) => shown.update(done, source.fraction()),
        }),
      );
      shown.end(result.added + result.existing + result.updated, source.fraction());
      print(
        options.json ?? false,
        result,
        () =>
          `schedule "${name}": ${result.added} target(s) added, ${result.existing} already there, ${result.updated} changed`,
      );
    });

  targets
    .command("rm <name> [keys...]")
    .description("remove targets (and their executions that have not started), by key or --file")
    .option("--file <file>", 'a file of keys, one per line ("-" for stdin)')
    .option("--json", "print JSON")
    .action(async (name: string, keys: string[], options, command: Command) => {
      if (keys.length > 0 === (options.file !== undefined)) {
        throw new RotaError("INVALID_OPTION", "Give target keys or --file FILE, not both.", {
          details: { flag: "--file" },
        });
      }
      const source = keys.length > 0 ? keys : keyLines(options.file).keys;
      const result = await withRota(command, (rota) => rota.schedules.targets.remove(name, source));
      print(
        options.json ?? false,
        result,
        () =>
          `schedule "${name}": ${result.removed} target(s) removed, ${result.removedExecutions} planned execution(s) with them`,
      );
    });

  targets
    .command("list <name>")
    .description("targets in key order, each with its next planned run")
    .option("--after <key>", "the page after this key")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "print a JSON array")
    .action(async (name: string, options, command: Command) => {
      const rows = await withRota(command, (rota) =>
        rota.schedules.targets.list(name, {
          limit: integerOption("--limit", options.limit),
          ...(options.after !== undefined ? { after: options.after } : {}),
        }),
      );
      print(options.json ?? false, rows, () =>
        snakeTable(rows, ["key", "enabled", "from_source", "next_run_at", "offset_ms"]),
      );
    });

  targets
    .command("count <name>")
    .description("how many targets the schedule has")
    .option("--json", "print JSON")
    .action(async (name: string, options, command: Command) => {
      const count = await withRota(command, (rota) => rota.schedules.targets.count(name));
      print(options.json ?? false, { name, targets: count }, () => String(count));
    });

  schedules
    .command("plan <name>")
    .description("how one cadence's runs fall across the window, per minute")
    .option("--occurrence <iso>", "the occurrence (default: the next)")
    .option("--json", "print JSON")
    .action(async (name: string, options, command: Command) => {
      const plan = await withRota(command, (rota) =>
        rota.schedules.plan(name, { occurrence: isoDate("--occurrence", options.occurrence) }),
      );
      const peak = Math.max(1, ...plan.perMinute.map((m) => m.count));
      print(
        options.json ?? false,
        {
          occurrence: plan.occurrence,
          window_ms: plan.windowMs,
          targets: plan.targets,
          materialized: plan.materialized,
          per_minute: plan.perMinute,
        },
        () =>
          `${plan.targets} run(s) of the cadence at ${plan.occurrence.toISOString()} over ${plan.windowMs} ms (${plan.materialized ? "planned" : "computed"}):\n` +
          table(
            plan.perMinute.map((m) => ({
              ...m,
              load: "#".repeat(Math.ceil((m.count / peak) * 40)),
            })),
            ["minute", "count", "load"],
          ),
      );
    });
}

/**
 * Keys from a file or stdin, one per line (blank lines skipped), streamed;
 * `fraction` is how much of a file has been read (null for stdin).
 */
function keyLines(file: string | undefined): {
  keys: AsyncIterable<string>;
  fraction: () => number | null;
} {
  if (file === undefined) {
    throw new RotaError("INVALID_OPTION", "Give --file FILE (or --file - for stdin).", {
      details: { flag: "--file" },
    });
  }
  let size: number | null = null;
  let stream: NodeJS.ReadableStream | null = null;
  async function* keys(): AsyncGenerator<string> {
    try {
      if (file !== "-") size = (await stat(file as string)).size;
      stream = file === "-" ? process.stdin : createReadStream(file as string);
      for await (const line of createInterface({
        input: stream,
        crlfDelay: Number.POSITIVE_INFINITY,
      })) {
        const key = line.trim();
        if (key !== "") yield key;
      }
    } catch (cause) {
      throw new RotaError(
        "INVALID_OPTION",
        `Cannot read --file ${file}: ${(cause as Error).message}.`,
        {
          cause,
          details: { flag: "--file" },
        },
      );
    }
  }
  const read = () =>
    stream !== null && "bytesRead" in stream ? (stream as { bytesRead: number }).bytesRead : 0;
  return { keys: keys(), fraction: () => (size ? read() / size : null) };
}
