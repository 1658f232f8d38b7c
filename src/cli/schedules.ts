import type { Command } from "commander";
import { RotaError } from "../errors.js";
import {
  DEFAULT_HORIZON,
  DEFAULT_HORIZON_MS,
  type ScheduleInput,
} from "../schedule/schedule-options.js";
import { withRota } from "./context.js";
import { integerOption, isoDate, logLine, printJson, snake, snakeTable } from "./output.js";
import { registerScheduleTargets } from "./schedule-targets.js";
import { registerScheduleImport } from "./schedules-import.js";

function print(json: boolean, value: unknown, text: () => string): void {
  if (json) printJson(snake(value));
  else process.stdout.write(`${text()}\n`);
}

interface AddOptions {
  task: string;
  cron?: string;
  every?: string;
  anchor?: string;
  timezone?: string;
  payload?: string;
  queue?: string;
  priority?: string;
  maxAttempts?: string;
  catchUp?: string;
  catchUpWindowMs?: string;
  overlap?: string;
  horizon?: string;
  horizonMs?: string;
  external?: boolean;
  window?: string;
  distribution?: string;
  seed?: string;
  targetSource?: string;
  json?: boolean;
}

function parsePayload(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new RotaError(
      "INVALID_PAYLOAD",
      `--payload must be JSON, e.g. '{"report":"daily"}': ${(cause as Error).message}.`,
      { cause, details: { flag: "--payload" } },
    );
  }
}

/** A duration flag: whole ms as digits, else text such as "1h" (checked by the library). */
function durationFlag(value: string): string | number {
  return /^\d+$/.test(value.trim()) ? Number(value) : value;
}

function optionalInteger(flag: string, value: string | undefined): number | undefined {
  return value === undefined ? undefined : integerOption(flag, value);
}

export function registerSchedules(program: Command): void {
  const schedules = program
    .command("schedules")
    .description("recurring jobs: add, list, pause, skip, trigger, and when they run");

  schedules
    .command("list")
    .description("schedules by name, with the next planned run of each")
    .option("--owner <owner>", "rota or external")
    .option("--prefix <text>", "names starting with this")
    .option("--limit <n>", "at most this many", "1000")
    .option("--json", "print a JSON array")
    .action(async (options, command: Command) => {
      if (options.owner !== undefined && !["rota", "external"].includes(options.owner)) {
        throw new RotaError(
          "INVALID_OPTION",
          `--owner must be rota or external, got "${options.owner}".`,
          {
            details: { flag: "--owner" },
          },
        );
      }
      const rows = await withRota(command, (rota) =>
        rota.schedules.list({
          owner: options.owner,
          namePrefix: options.prefix,
          limit: integerOption("--limit", options.limit),
        }),
      );
      print(options.json, rows, () =>
        snakeTable(
          rows.map((r) => ({
            ...r,
            spec: r.cron ?? `every ${r.every}`,
            state: !r.enabled
              ? "disabled"
              : r.paused
                ? "paused"
                : r.owner === "external"
                  ? "external"
                  : "active",
          })),
          [
            "name",
            "task",
            "spec",
            "timezone",
            "state",
            "next_planned_at",
            "last_run_at",
            "last_error",
          ],
        ),
      );
    });

  schedules
    .command("get <name>")
    .description("one schedule, whole")
    .option("--json", "print JSON")
    .action(async (name: string, options, command: Command) => {
      const schedule = await withRota(command, (rota) => rota.schedules.get(name));
      if (!schedule) {
        throw new RotaError(
          "SCHEDULE_NOT_FOUND",
          `No schedule named "${name}" (rota schedules list shows them).`,
          {
            details: { name },
          },
        );
      }
      print(options.json, schedule, () =>
        Object.entries(snake(schedule) as Record<string, unknown>)
          .map(
            ([key, value]) =>
              `${key.padEnd(20)} ${value instanceof Date ? value.toISOString() : JSON.stringify(value)}`,
          )
          .join("\n"),
      );
    });

  schedules
    .command("add <name>")
    .description("create a schedule, or change it (by name; the same input again changes nothing)")
    .requiredOption("--task <task>", "the task each execution runs")
    .option("--cron <expr>", 'cron expression, 5 or 6 fields (e.g. "0 9 * * 1-5")')
    .option("--every <duration>", 'interval instead of cron: "90m", "3d", "PT90M", …')
    .option(
      "--anchor <iso>",
      "where an --every grid starts (default 1970-01-01 00:00 in the timezone)",
    )
    .option("--timezone <tz>", "IANA timezone of the spec", "UTC")
    .option("--payload <json>", "payload of each execution")
    .option("--queue <queue>")
    .option("--priority <n>")
    .option("--max-attempts <n>")
    .option("--catch-up <policy>", "after downtime: all, latest or none", "latest")
    .option("--catch-up-window-ms <ms>", "an execution not started within this becomes missed")
    .option("--overlap <policy>", "while the previous run runs: allow, skip or queue", "allow")
    .option(
      "--horizon <n>",
      "future executions kept materialized, at least",
      String(DEFAULT_HORIZON),
    )
    .option(
      "--horizon-ms <ms>",
      "and kept materialized this far ahead, at least",
      String(DEFAULT_HORIZON_MS),
    )
    .option("--external", "owned by another scheduler until handed over")
    .option(
      "--window <duration>",
      'fan-out: spread each cadence\'s targets over this window ("1h"; capped at the period)',
    )
    .option(
      "--distribution <strategy>",
      "fan-out placement: random, spread, batches:K/DURATION, or a strategy registered in code",
    )
    .option("--seed <n>", "what random draws from (default: the schedule's name)")
    .option(
      "--target-source <sql>",
      'fan-out to the keys a query returns, read each cadence ("select id::text as key from projects")',
    )
    .option("--json", "print JSON")
    .action(async (name: string, options: AddOptions, command: Command) => {
      const input: ScheduleInput = {
        name,
        task: options.task,
        payload: parsePayload(options.payload),
        timezone: options.timezone,
        catchUp: options.catchUp as ScheduleInput["catchUp"],
        overlap: options.overlap as ScheduleInput["overlap"],
        owner: options.external ? "external" : "rota",
        ...(options.cron !== undefined ? { cron: options.cron } : {}),
        ...(options.every !== undefined ? { every: options.every } : {}),
        ...(options.anchor !== undefined ? { anchor: options.anchor } : {}),
        ...(options.queue !== undefined ? { queue: options.queue } : {}),
        priority: optionalInteger("--priority", options.priority),
        maxAttempts: optionalInteger("--max-attempts", options.maxAttempts),
        catchUpWindowMs: optionalInteger("--catch-up-window-ms", options.catchUpWindowMs),
        horizon: optionalInteger("--horizon", options.horizon),
        horizonMs: optionalInteger("--horizon-ms", options.horizonMs),
        ...(options.window !== undefined ? { window: durationFlag(options.window) } : {}),
        ...(options.distribution !== undefined ? { distribution: options.distribution } : {}),
        seed: optionalInteger("--seed", options.seed),
        ...(options.targetSource !== undefined ? { targetSource: options.targetSource } : {}),
      };
      const result = await withRota(command, (rota) => rota.schedules.upsert(input));
      print(
        options.json ?? false,
        result,
        () =>
          `schedule "${name}" ${result.outcome}` +
          (result.outcome === "unchanged"
            ? ""
            : `: ${result.materialized} execution(s) planned, ${result.superseded} superseded; next run at ${result.schedule.nextPlannedAt?.toISOString() ?? "-"}`),
      );
    });

  schedules
    .command("rm <name>")
    .description("delete a schedule and its executions that have not started")
    .option("--json", "print JSON")
    .action(async (name: string, options, command: Command) => {
      const result = await withRota(command, (rota) => rota.schedules.remove(name));
      print(
        options.json,
        { name, ...result },
        () =>
          `schedule "${name}" deleted (${result.removedExecutions} planned execution(s) removed)`,
      );
    });

  for (const [verb, description] of [
    ["pause", "stop firing; planned executions are superseded"],
    ["resume", "fire again from the next occurrence (nothing missed meanwhile bursts)"],
    ["enable", "enable (also one rota disabled for a bad spec)"],
    ["disable", "disable; planned executions are superseded"],
  ] as const) {
    schedules
      .command(`${verb} <name>`)
      .description(description)
      .option("--json", "print JSON")
      .action(async (name: string, options, command: Command) => {
        const schedule = await withRota(command, (rota) => rota.schedules[verb](name));
        print(options.json, schedule, () => `schedule "${name}": ${verb}d`);
      });
  }

  schedules
    .command("skip <name>")
    .description("skip the next planned execution (or one by id); the schedule goes on")
    .option("--execution <id>", "the execution (job id) to skip")
    .option("--target <key>", "the next run of this target (a schedule with targets)")
    .option("--json", "print JSON")
    .action(async (name: string, options, command: Command) => {
      const skipped = await withRota(command, (rota) =>
        rota.schedules.skip(name, {
          ...(options.execution ? { executionId: options.execution } : {}),
          ...(options.target !== undefined ? { target: options.target } : {}),
        }),
      );
      print(
        options.json,
        skipped,
        () =>
          `schedule "${name}": skipped execution ${skipped.id} planned for ${skipped.runAt.toISOString()}`,
      );
    });

  schedules
    .command("trigger <name>")
    .description("run one extra execution now; the planned ones are left alone")
    .option("--target <key>", "for this target (a schedule with targets)")
    .option("--json", "print JSON")
    .action(async (name: string, options, command: Command) => {
      const result = await withRota(command, (rota) =>
        rota.schedules.trigger(
          name,
          options.target !== undefined ? { target: options.target } : {},
        ),
      );
      print(
        options.json,
        result,
        () => `schedule "${name}": execution ${result.executionId} enqueued now`,
      );
    });

  schedules
    .command("upcoming <name>")
    .description("when the next runs will happen (materialized, then computed)")
    .option("--target <key>", "a target's key (a schedule with targets; else its own grid)")
    .option("--limit <n>", "how many", "10")
    .option("--from <iso>", "from this time (default now)")
    .option("--json", "print a JSON array")
    .action(async (name: string, options, command: Command) => {
      const runs = await withRota(command, (rota) =>
        rota.schedules.upcoming(name, {
          target: options.target,
          limit: integerOption("--limit", options.limit),
          from: isoDate("--from", options.from),
        }),
      );
      print(options.json, runs, () =>
        snakeTable(runs, ["run_at", "target_key", "offset_ms", "state", "execution_id"]),
      );
    });

  registerScheduleTargets(schedules, print);

  schedules
    .command("history <name>")
    .description("executions, newest first, including skipped, superseded and missed ones")
    .option("--limit <n>", "how many", "50")
    .option("--state <list>", "comma-separated states")
    .option("--json", "print a JSON array")
    .action(async (name: string, options, command: Command) => {
      const rows = await withRota(command, (rota) =>
        rota.schedules.history(name, {
          limit: integerOption("--limit", options.limit),
          ...(options.state
            ? {
                states: String(options.state)
                  .split(",")
                  .map((s) => s.trim()),
              }
            : {}),
        }),
      );
      print(options.json, rows, () =>
        snakeTable(rows, ["id", "state", "run_at", "attempts", "finished_at", "last_error"]),
      );
    });

  registerScheduleImport(schedules, print);

  schedules
    .command("handover [names...]")
    .description(
      "hand schedules from another scheduler (imported --external) to rota: by name, or --percent of them (lower it to roll back)",
    )
    .option("--percent <p>", "rota owns this percent of them (0-100), by a stable hash of the name")
    .option("--json", "print JSON")
    .action(async (names: string[], options, command: Command) => {
      if ((options.percent === undefined) === (names.length === 0)) {
        throw new RotaError("INVALID_OPTION", "Give schedule names or --percent P, not both.", {
          details: { flag: "--percent" },
        });
      }
      const percent = options.percent === undefined ? undefined : Number(options.percent);
      const changes = await withRota(command, (rota) =>
        rota.schedules.handover(percent === undefined ? { names } : { percent }, (done, total) =>
          logLine(`handover: ${done}/${total}`),
        ),
      );
      print(options.json, { changes }, () =>
        changes.length === 0
          ? "handover: nothing to change"
          : changes.map((c) => `${c.name}: ${c.from} -> ${c.to}`).join("\n"),
      );
    });

  schedules
    .command("handback <names...>")
    .description(
      "give schedules back to the other scheduler (their planned executions are superseded)",
    )
    .option("--json", "print JSON")
    .action(async (names: string[], options, command: Command) => {
      const changes = await withRota(command, (rota) =>
        rota.schedules.handover({ names, to: "external" }),
      );
      print(options.json, { changes }, () =>
        changes.length === 0
          ? "handback: nothing to change"
          : changes.map((c) => `${c.name}: ${c.from} -> ${c.to}`).join("\n"),
      );
    });
}
