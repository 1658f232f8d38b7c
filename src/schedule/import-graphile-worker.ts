/**
 * A graphile-worker crontab as rota schedules, for a switch from
 * graphile-worker (`rota schedules import --from graphile-worker --crontab
 * FILE`, docs/coming-from.md).
 *
 * Its lines are `<minute> <hour> <dom> <month> <dow> <task> [?opts]
 * [payload]`, in UTC, the payload JSON5, the options a query string. The
 * lines are split and their cron checked by the crontab import
 * (crontab.ts), which reads the standard format; this file reads what
 * follows the spec. Each line becomes a schedule named `<prefix><id>` (the
 * `id` option, else the task: graphile-worker's identifier, unique in the
 * file), owned by "external" until handed over.
 *
 * Mapped: `max` (maxAttempts), `priority` (negated: graphile-worker runs the
 * lowest number first, rota the highest), `queue` (rota's queue of that name)
 * and `fill`: a line with `fill=4w` runs occurrences missed while no worker
 * ran if they are at most that old, which is rota's catch-up "all" with that
 * window; a line without it skips them, catch-up "none". Not mapped, and
 * listed: a named queue's one-at-a-time order, `jobKey` and `jobKeyMode`.
 */

import JSON5 from "json5";
import { crontabLines, invalidCrontab } from "./crontab.js";
import type { ImportEntry, ImportPlan, UnmappedOption } from "./schedule-import.js";

export const DEFAULT_GRAPHILE_WORKER_PREFIX = "graphile-worker:";

// graphile-worker's own grammar (its cronConstants), so a line it refuses is refused here too.
const COMMAND = /^([_a-zA-Z][_a-zA-Z0-9:/_-]*)(?:\s+\?([^\s]+))?(?:\s+(\{.*\}))?$/;
const OPTION_VALUES: Record<string, RegExp> = {
  id: /^[_a-zA-Z][-_a-zA-Z0-9]*$/,
  fill: /^(?:[0-9]+[smhdw])+$/,
  max: /^[0-9]+$/,
  queue: /^[-a-zA-Z0-9_:]+$/,
  jobKey: /^.*$/,
  jobKeyMode: /^(?:replace|preserve_run_at)$/,
  priority: /^-?[0-9]+$/,
};
const PERIOD_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** A time phrase such as "4w3d" in ms, as graphile-worker counts it. */
function timePhraseMs(phrase: string): number {
  let ms = 0;
  for (const [, quantity, period] of phrase.matchAll(/([0-9]+)([smhdw])/g)) {
    ms += Number(quantity) * (PERIOD_MS[period as string] as number);
  }
  return ms;
}

/** Maps a graphile-worker crontab onto external rota schedules named `<prefix><identifier>`. */
export function graphileWorkerImport(text: string, options: { prefix?: string } = {}): ImportPlan {
  const prefix = options.prefix ?? DEFAULT_GRAPHILE_WORKER_PREFIX;
  // graphile-worker runs its crontab in UTC and has no NAME=value lines.
  const { lines, problems } = crontabLines(text, { timezone: "UTC", assignments: false });
  const entries: ImportEntry[] = [];
  const identifiers = new Map<string, number>();
  for (const { line, cron, rest } of lines) {
    const source = `line ${line}`;
    const command = COMMAND.exec(rest);
    if (!command) {
      problems.push(
        `${source}: "${rest}" is not "<task> [?options] [{payload}]" as graphile-worker reads it`,
      );
      continue;
    }
    const [, task, query, payloadText] = command as unknown as [string, string, string?, string?];
    const opts = new Map<string, string>();
    let bad = false;
    for (const [key, value] of new URLSearchParams(query ?? "")) {
      const pattern = OPTION_VALUES[key];
      const why = !pattern
        ? `unknown option "${key}" (graphile-worker's are ${Object.keys(OPTION_VALUES).join(", ")})`
        : opts.has(key)
          ? `option "${key}" is given twice`
          : pattern.test(value)
            ? null
            : `option ${key}=${value} is not a value graphile-worker takes`;
      if (why) {
        problems.push(`${source}: ${why}`);
        bad = true;
      }
      opts.set(key, value);
    }
    let payload: unknown = {};
    if (payloadText !== undefined) {
      try {
        payload = JSON5.parse(payloadText);
      } catch (error) {
        problems.push(`${source}: the payload is not JSON5: ${(error as Error).message}`);
        bad = true;
      }
    }
    if (bad) continue;
    const identifier = opts.get("id") ?? task;
    const earlier = identifiers.get(identifier);
    if (earlier !== undefined) {
      problems.push(
        `${source}: identifier "${identifier}" is line ${earlier}'s too; give one of them ?id=... (graphile-worker refuses the file as well)`,
      );
      continue;
    }
    identifiers.set(identifier, line);
    const fillMs = timePhraseMs(opts.get("fill") ?? "");
    const max = opts.get("max");
    const priority = opts.get("priority");
    const queue = opts.get("queue");
    const unmapped: UnmappedOption[] = [];
    if (queue !== undefined) {
      unmapped.push({
        option: "queue",
        value: queue,
        reason: `graphile-worker runs a named queue's jobs one at a time, in order; rota puts them in its queue "${queue}" (serve it: worker --queues ${queue}) and runs them one at a time after rota queues limit ${queue} 1`,
      });
    }
    for (const option of ["jobKey", "jobKeyMode"]) {
      const value = opts.get(option);
      if (value === undefined) continue;
      unmapped.push({
        option,
        value,
        reason:
          "rota plans each occurrence as its own execution, once; a schedule's overlap (skip or queue) keeps its runs apart",
      });
    }
    entries.push({
      source,
      input: {
        name: `${prefix}${identifier}`,
        task,
        cron,
        timezone: "UTC",
        owner: "external",
        payload,
        ...(max === undefined ? {} : { maxAttempts: Number(max) }),
        // `|| 0`: never -0.
        ...(priority === undefined ? {} : { priority: -Number(priority) || 0 }),
        ...(queue === undefined ? {} : { queue }),
        ...(fillMs > 0 ? { catchUp: "all", catchUpWindowMs: fillMs } : { catchUp: "none" }),
      },
      unmapped,
    });
  }
  return { entries, problems, invalid: (all) => invalidCrontab(all) };
}
