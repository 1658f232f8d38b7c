import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { RotaError } from "../errors.js";
import { crontabSchedule, parseCrontab } from "../schedule/crontab.js";
import { DEFAULT_GRAPHILE_WORKER_PREFIX } from "../schedule/import-graphile-worker.js";
import { DEFAULT_PG_BOSS_PREFIX, DEFAULT_PG_BOSS_SCHEMA } from "../schedule/import-pg-boss.js";
import type { ImportResult } from "../schedule/schedule-import.js";
import { withRota } from "./context.js";
import { logLine } from "./output.js";

type Print = (json: boolean, value: unknown, text: () => string) => void;

const SOURCES = ["crontab", "pg-boss", "graphile-worker"] as const;
type Source = (typeof SOURCES)[number];

interface ImportFlags {
  from?: string;
  crontab?: string;
  pgBossSchema?: string;
  task?: string;
  prefix?: string;
  timezone?: string;
  external?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

function invalid(flag: string, message: string): RotaError {
  return new RotaError("INVALID_OPTION", message, { details: { flag } });
}

/** The flags that go with only some sources, and why they do not go with the others. */
const SOURCE_FLAGS: [keyof ImportFlags, string, readonly Source[], string][] = [
  ["crontab", "--crontab", ["crontab", "graphile-worker"], "pg-boss's schedules are in its tables"],
  ["pgBossSchema", "--pg-boss-schema", ["pg-boss"], "it names where pg-boss's tables are"],
  ["task", "--task", ["crontab"], "each schedule runs the task the other scheduler named"],
  ["timezone", "--timezone", ["crontab"], "each schedule keeps the other scheduler's timezone"],
  ["external", "--external", ["crontab"], "another scheduler's schedules are always external"],
];

/** Refuses a flag the source does not take, rather than ignoring it. */
function checkFlags(from: Source, flags: ImportFlags): void {
  if (from !== "pg-boss" && flags.crontab === undefined) {
    throw invalid("--crontab", `--from ${from} reads a crontab file: give --crontab FILE.`);
  }
  for (const [key, flag, sources, why] of SOURCE_FLAGS) {
    if (flags[key] !== undefined && !sources.includes(from)) {
      throw invalid(flag, `${flag} does not go with --from ${from}: ${why}.`);
    }
  }
}

async function readCrontab(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (cause) {
    throw new RotaError(
      "INVALID_OPTION",
      `Cannot read --crontab ${file}: ${(cause as Error).message}.`,
      { cause, details: { flag: "--crontab" } },
    );
  }
}

function onProgress(done: number, total: number): void {
  logLine(`import: ${done}/${total}`);
}

/** The text report of an import from another scheduler: each schedule, and what did not map. */
function describe(from: Source, result: ImportResult): string {
  const lines = [
    `${result.dryRun ? "would import" : "imported"} ${result.imported.length} schedule(s) from ${from} as external${result.dryRun ? " (dry run: nothing written)" : ""}`,
  ];
  for (const schedule of result.imported) {
    lines.push(
      `  ${schedule.name}  ${schedule.outcome}  (${schedule.source}: ${schedule.task}, "${schedule.cron}" ${schedule.timezone})`,
    );
    for (const u of schedule.unmapped) {
      lines.push(`    not mapped: ${u.option}=${JSON.stringify(u.value)}: ${u.reason}`);
    }
  }
  lines.push("next: rota schedules handover NAME... (or --percent P); handback rolls back");
  return lines.join("\n");
}

/**
 * `rota schedules import`: a crontab, or another scheduler's schedules
 * (pg-boss's tables, a graphile-worker crontab) as external schedules. All
 * are checked first and written in one transaction; --dry-run rolls it back.
 */
export function registerScheduleImport(schedules: Command, print: Print): void {
  schedules
    .command("import")
    .description(
      "schedules from a crontab, pg-boss or a graphile-worker crontab (checked whole, then written in one transaction)",
    )
    .option("--from <source>", "crontab, pg-boss or graphile-worker", "crontab")
    .option("--crontab <file>", "the crontab file (--from crontab or graphile-worker)")
    .option(
      "--pg-boss-schema <name>",
      `the schema pg-boss was started with (--from pg-boss; default ${DEFAULT_PG_BOSS_SCHEMA})`,
    )
    .option(
      "--task <task>",
      "--from crontab: the task that runs each command, its payload has the command (default crontab.command)",
    )
    .option(
      "--prefix <text>",
      `schedule name prefix (default cron-, ${DEFAULT_PG_BOSS_PREFIX} or ${DEFAULT_GRAPHILE_WORKER_PREFIX})`,
    )
    .option("--timezone <tz>", "--from crontab: the timezone until a CRON_TZ= line (default UTC)")
    .option(
      "--external",
      "--from crontab: owned by the other scheduler until `rota schedules handover` (always so for pg-boss and graphile-worker)",
    )
    .option("--dry-run", "check and report what would be imported; write nothing")
    .option("--json", "print JSON")
    .action(async (flags: ImportFlags, command: Command) => {
      const from = flags.from as Source;
      if (!SOURCES.includes(from)) {
        throw invalid("--from", `--from must be ${SOURCES.join(", ")}; got "${flags.from}".`);
      }
      checkFlags(from, flags);
      const dryRun = flags.dryRun === true;
      if (from === "crontab") {
        const text = await readCrontab(flags.crontab as string);
        const entries = parseCrontab(text, {
          prefix: flags.prefix ?? "cron-",
          timezone: flags.timezone ?? "UTC",
        });
        const owner = flags.external ? "external" : "rota";
        const task = flags.task ?? "crontab.command";
        const written = await withRota(command, (rota) =>
          rota.schedules.upsertMany(
            entries.map((entry) => crontabSchedule(entry, task, owner)),
            onProgress,
            { dryRun },
          ),
        );
        const imported = written.map((result, i) => ({
          name: result.schedule.name,
          line: entries[i]?.line,
          outcome: result.outcome,
        }));
        print(
          flags.json ?? false,
          { owner, dryRun, imported },
          () =>
            `${dryRun ? "would import" : "imported"} ${imported.length} schedule(s) as ${owner}${dryRun ? " (dry run: nothing written)" : ""}`,
        );
        return;
      }
      const options = { prefix: flags.prefix, dryRun, onProgress };
      const result =
        from === "pg-boss"
          ? await withRota(command, (rota) =>
              rota.schedules.importFromPgBoss({ ...options, schema: flags.pgBossSchema }),
            )
          : await readCrontab(flags.crontab as string).then((text) =>
              withRota(command, (rota) =>
                rota.schedules.importGraphileWorkerCrontab(text, options),
              ),
            );
      print(flags.json ?? false, { from, ...result }, () => describe(from, result));
    });
}
