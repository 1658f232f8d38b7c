/**
 * Turns a standard (user) crontab into schedules, for a migration from cron
 * or another scheduler to rota. Each entry line "m h dom mon dow command"
 * (or "@daily command" …) becomes one schedule whose payload carries the
 * command; the task that runs it is the caller's. Names are derived from the
 * entry, so importing the same file again changes nothing.
 *
 * Comments and blank lines are ignored; `CRON_TZ=` or `TZ=` sets the
 * timezone of the lines after it; other `NAME=value` lines are kept in each
 * later entry's payload as `env`. `@reboot` has no occurrences and is
 * refused. The whole file is checked before anything is written.
 */

import { createHash } from "node:crypto";
import { RotaError } from "../errors.js";
import type { ScheduleInput } from "./schedule-options.js";
import { compileSpec, validateTimezone } from "./spec.js";

export interface CrontabEntry {
  line: number;
  name: string;
  cron: string;
  timezone: string;
  command: string;
  env: Record<string, string>;
}

export interface CrontabOptions {
  /** Prefix of every schedule name; default "cron-". */
  prefix?: string;
  /** Timezone until a CRON_TZ= line; default "UTC". */
  timezone?: string;
}

const NICKNAME = /^@(yearly|annually|monthly|weekly|daily|midnight|hourly|reboot)$/i;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/;

/** One schedule line of a crontab: its spec, and what follows the spec. */
export interface CrontabLine {
  line: number;
  cron: string;
  timezone: string;
  /** The rest of the line after the spec, its words joined by one space. */
  command: string;
  /** The rest of the line after the spec as written (a graphile-worker payload keeps its spaces). */
  rest: string;
  /** The NAME=value lines above it. */
  env: Record<string, string>;
}

export interface CrontabLineOptions {
  /** Timezone until a CRON_TZ= line; default "UTC". */
  timezone?: string;
  /**
   * Whether NAME=value lines are allowed (default true). A graphile-worker
   * crontab has none: its parser refuses them, so rota does too.
   */
  assignments?: boolean;
}

/**
 * Splits a crontab into its schedule lines, each spec checked by rota's own
 * cron parser. Every line rota cannot use is collected in `problems` ("line
 * N: why") instead of thrown, so a caller reports all of them at once.
 */
export function crontabLines(
  text: string,
  options: CrontabLineOptions = {},
): { lines: CrontabLine[]; problems: string[] } {
  let timezone = validateTimezone(options.timezone ?? "UTC");
  const env: Record<string, string> = {};
  const lines: CrontabLine[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const assignment = ASSIGNMENT.exec(trimmed);
    if (assignment && !/^[\d*@]/.test(trimmed)) {
      if (options.assignments === false) {
        problems.push(`line ${line}: a NAME=value line; this crontab format has none`);
        return;
      }
      const [, key, value] = assignment as unknown as [string, string, string];
      const unquoted = value.replace(/^(["'])(.*)\1$/, "$2");
      if (key === "CRON_TZ" || key === "TZ") {
        try {
          timezone = validateTimezone(unquoted);
        } catch (error) {
          problems.push(`line ${line}: ${(error as Error).message}`);
        }
      } else env[key] = unquoted;
      return;
    }
    const fields = trimmed.split(/\s+/);
    let cron: string;
    let command: string;
    let rest: string;
    if (fields[0]?.startsWith("@")) {
      const nickname = NICKNAME.exec(fields[0]);
      if (!nickname) {
        problems.push(
          `line ${line}: unknown "${fields[0]}" (use @hourly, @daily, @weekly, @monthly or @yearly)`,
        );
        return;
      }
      if (nickname[1]?.toLowerCase() === "reboot") {
        problems.push(
          `line ${line}: @reboot runs at boot, not on a schedule; remove it or run it another way`,
        );
        return;
      }
      cron = nickname[1]?.toLowerCase() === "midnight" ? "@daily" : fields[0].toLowerCase();
      command = fields.slice(1).join(" ");
      rest = /^\S+\s+(.*)$/.exec(trimmed)?.[1] ?? "";
    } else {
      cron = fields.slice(0, 5).join(" ");
      command = fields.slice(5).join(" ");
      rest = /^(?:\S+\s+){5}(.*)$/.exec(trimmed)?.[1] ?? "";
    }
    if (command === "") {
      problems.push(`line ${line}: no command after the schedule "${cron}"`);
      return;
    }
    try {
      compileSpec({ cron, timezone });
    } catch (error) {
      problems.push(`line ${line}: ${(error as Error).message}`);
      return;
    }
    lines.push({ line, cron, timezone, command, rest, env: { ...env } });
  });
  return { lines, problems };
}

/** The error for a crontab with lines rota cannot import: every problem, one a line. */
export function invalidCrontab(unordered: readonly string[]): RotaError {
  // In file order, whichever check found each ("line N: ...").
  const lineOf = (problem: string) => Number(/^line (\d+)/.exec(problem)?.[1] ?? 0);
  const problems = [...unordered].sort((a, b) => lineOf(a) - lineOf(b));
  return new RotaError(
    "INVALID_CRONTAB",
    `The crontab has ${problems.length} line(s) rota cannot import; nothing was written:\n  ${problems.join("\n  ")}`,
    { details: { problems } },
  );
}

export function parseCrontab(text: string, options: CrontabOptions = {}): CrontabEntry[] {
  const prefix = options.prefix ?? "cron-";
  const { lines, problems } = crontabLines(text, { timezone: options.timezone });
  const entries: CrontabEntry[] = [];
  const names = new Map<string, number>();
  for (const { line, cron, timezone, command, env } of lines) {
    const name = `${prefix}${slug(command)}-${hash(`${cron}\u001f${timezone}\u001f${command}`)}`;
    const earlier = names.get(name);
    if (earlier !== undefined) {
      problems.push(`line ${line}: the same entry as line ${earlier}`);
      continue;
    }
    names.set(name, line);
    entries.push({ line, name, cron, timezone, command, env });
  }
  if (problems.length > 0) throw invalidCrontab(problems);
  return entries;
}

/** The schedule for one crontab entry, run by `task` with the command in its payload. */
export function crontabSchedule(
  entry: CrontabEntry,
  task: string,
  owner: "rota" | "external",
): ScheduleInput {
  return {
    name: entry.name,
    task,
    cron: entry.cron,
    timezone: entry.timezone,
    owner,
    payload: {
      command: entry.command,
      ...(Object.keys(entry.env).length > 0 ? { env: entry.env } : {}),
    },
  };
}

function slug(command: string): string {
  const first = command.split(/\s+/)[0] ?? "job";
  const base = first.split("/").pop() ?? first;
  const cleaned = base
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return (cleaned || "job").slice(0, 40);
}

function hash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}
