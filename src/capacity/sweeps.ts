import type pg from "pg";
import { wholeNumber } from "../config.js";
import type { Database } from "../db/database.js";
import { sweepQueries } from "../db/queries/sweeps.js";
import { RotaError } from "../errors.js";
import { DEFAULT_QUEUE, rejectUnknownKeys, validateQueueName } from "../queue/job-options.js";
import type { Schedules } from "../schedule/schedules.js";
import type { TaskDefinition } from "../task.js";
import type { JobContext } from "../worker/job-context.js";

/** What a sweep's `perform` is given: the job's context, and the transaction its item was picked in. */
export interface SweepContext extends JobContext {
  /** The transaction `pick` locked the item in; it commits after `perform` and `remaining`. */
  client: pg.PoolClient;
}

/** A limited-capacity sweep (see Sweeps). */
export interface SweepDefinition<Item = unknown> {
  /** 1-100 letters, digits, "_", ".", ":" or "-". */
  name: string;
  /** The queue its instances run in; pausing it stops the sweep. Default "default". */
  queue?: string;
  /** At most this many instances run at once, across all workers. */
  maxRunning: number;
  /** Kicks the sweep on this cron (5 or 6 fields), topping it up to maxRunning. */
  cron?: string;
  /** The cron's timezone (IANA); default UTC. */
  timezone?: string;
  /**
   * Selects and locks the next item to work on, inside rota's transaction:
   * typically `select … for update skip locked limit 1` on your own table,
   * stalest first. Null or undefined: nothing left for this instance.
   */
  pick(client: pg.PoolClient): Promise<Item | null | undefined>;
  /** Does the work on the item (its lock is held until the transaction commits). */
  perform(item: Item, context: SweepContext): Promise<unknown> | unknown;
  /** How many items are left (after this one): the instance re-enqueues itself while more than 0. */
  remaining(client: pg.PoolClient): Promise<number>;
}

/**
 * Types a sweep definition (for a module `rota worker --tasks` loads: export
 * them as `sweeps`). Checked when defined on a Rota.
 */
export function defineSweep<Item>(definition: SweepDefinition<Item>): SweepDefinition<Item> {
  return Object.freeze({ ...definition });
}

/** A sweep as `list()` reports it. */
export interface SweepInfo {
  name: string;
  queue: string;
  maxRunning: number;
  cron: string | null;
  /** Its queue is paused: the sweep waits for it. */
  paused: boolean;
  /** Instances running now. */
  running: number;
  /** Instances queued. */
  waiting: number;
  /** When it was last topped up (by a kick, or by an instance that found more to do). */
  lastKickedAt: Date | null;
}

const SWEEP_KEYS = [
  "name",
  "queue",
  "maxRunning",
  "cron",
  "timezone",
  "pick",
  "perform",
  "remaining",
] as const;
const SWEEP_NAME = /^[A-Za-z0-9_.:-]{1,100}$/;

/**
 * Sweeps: limited-capacity work over a backlog in your own tables (the
 * stale-row refresh of the seed it comes from). rota keeps up to
 * `maxRunning` instances of a sweep running across all workers: each
 * instance picks one item in a transaction, performs it, and, while items
 * remain, tops the sweep up again before it commits (so its successor exists
 * if and only if its work commits). When nothing remains the instances end;
 * `run()` (or the cron, or `rota sweeps run`) kicks the sweep again.
 *
 * Instances are ordinary jobs (task `sweep:<name>`) under the concurrency
 * key `sweep:<name>` limited to maxRunning, so the limit is the claim's
 * (docs/capacity.md), and pausing the queue stops the sweep until it is
 * resumed. Workers of this Rota serve the sweeps defined on it.
 */
export class Sweeps {
  private readonly defined = new Map<string, SweepDefinition>();
  private readonly q;

  constructor(
    private readonly db: Database,
    private readonly schedules: Schedules,
  ) {
    this.q = sweepQueries(db.schema);
  }

  /**
   * Registers a sweep for this Rota's workers, and records it in the
   * database (so `rota sweeps list|run` know it); with `cron`, its kick
   * schedule `sweep:<name>` is created or updated, and without, removed.
   * Defining it again updates it. Does not start it: `run()` does, or the cron.
   */
  async define<Item>(definition: SweepDefinition<Item>): Promise<SweepInfo> {
    const sweep = validateSweep(definition as SweepDefinition);
    const queue = sweep.queue ?? DEFAULT_QUEUE;
    const task = taskOf(sweep.name);
    if (sweep.cron !== undefined) {
      await this.schedules.upsert({
        name: task,
        task: { name: task, queue, handler: () => {} },
        payload: { kick: true },
        cron: sweep.cron,
        ...(sweep.timezone !== undefined ? { timezone: sweep.timezone } : {}),
        queue,
        // A kick missed during downtime is one kick, not many.
        catchUp: "latest",
      });
    } else if ((await this.schedules.get(task)) !== null) {
      await this.schedules.remove(task);
    }
    // After the schedule, whose checks (the cron, the timezone) come first:
    // a sweep refused leaves nothing recorded.
    await this.db.run(this.q.Upsert, {
      name: sweep.name,
      queue,
      maxRunning: sweep.maxRunning,
      cron: sweep.cron ?? null,
    });
    this.defined.set(sweep.name, sweep);
    return (await this.listed(sweep.name))[0] as SweepInfo;
  }

  /**
   * Kicks sweep `name`: tops it up to maxRunning instances (those already
   * queued or running count). Works from any process: the sweep need only be
   * recorded (define), not defined here. Returns how many were enqueued.
   */
  async run(name: string): Promise<{ name: string; started: number }> {
    const sweepName = validateSweepName(name);
    const result = await this.db.run(this.q.TopUp, { name: sweepName, runningInstance: null });
    const added = result.rows[0]?.added ?? null;
    if (added === null) {
      throw new RotaError(
        "SWEEP_NOT_FOUND",
        `No sweep named "${sweepName}": define it with rota.sweeps.define() first (rota sweeps list shows the recorded ones).`,
        { details: { name: sweepName } },
      );
    }
    return { name: sweepName, started: added };
  }

  /** Every recorded sweep, with its instances running and waiting. */
  list(): Promise<SweepInfo[]> {
    return this.listed(null);
  }

  /** Every recorded sweep, or the one named. */
  private async listed(name: string | null): Promise<SweepInfo[]> {
    const result = await this.db.run(this.q.List, { name });
    return result.rows.map((row) => ({
      name: row.name,
      queue: row.queue,
      maxRunning: row.max_running,
      cron: row.cron,
      paused: row.paused,
      running: row.running,
      waiting: row.waiting,
      lastKickedAt: row.last_kicked_at,
    }));
  }

  /** The tasks a worker runs for the sweeps defined here: one per sweep, its instances and kicks. */
  tasks(): TaskDefinition[] {
    return [...this.defined.values()].map((sweep) => ({
      name: taskOf(sweep.name),
      queue: sweep.queue ?? DEFAULT_QUEUE,
      handler: (payload: unknown, context: JobContext) =>
        isKick(payload) ? this.run(sweep.name) : this.instance(sweep, context),
    }));
  }

  /**
   * One instance: picks an item, performs it and, while items remain, tops
   * the sweep up, all in one transaction. A throw rolls it all back (the item
   * stays for a later pick) and the instance is retried like any job.
   */
  private async instance(
    sweep: SweepDefinition,
    context: JobContext,
  ): Promise<{ picked: boolean; remaining?: number }> {
    const client = await this.db.pool.connect();
    let broken: unknown;
    try {
      await client.query("begin");
      const item = await sweep.pick(client);
      if (item === null || item === undefined) {
        await client.query("commit");
        return { picked: false };
      }
      await sweep.perform(item, { ...context, client });
      const remaining = Number(await sweep.remaining(client));
      if (Number.isNaN(remaining)) {
        throw new RotaError(
          "INVALID_OPTION",
          `Sweep "${sweep.name}": remaining() must return a number of items left.`,
          { details: { field: "remaining", sweep: sweep.name } },
        );
      }
      if (remaining > 0) {
        await this.db.run(
          this.q.TopUp,
          { name: sweep.name, runningInstance: context.job.id },
          client,
        );
      }
      // A transaction a statement of perform() aborted (its error caught)
      // ends in ROLLBACK: the work and the successor are not there.
      const committed = await client.query("commit");
      if (committed.command !== "COMMIT") {
        throw new RotaError(
          "SWEEP_ROLLED_BACK",
          `Sweep "${sweep.name}": the transaction was rolled back (a statement in perform or remaining failed and its error was caught); the item stays for a later pick.`,
          { details: { sweep: sweep.name } },
        );
      }
      return { picked: true, remaining };
    } catch (error) {
      await client.query("rollback").catch((rollbackError: unknown) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      // A connection whose rollback failed is not given back to the pool.
      client.release(broken instanceof Error ? broken : undefined);
    }
  }
}

function taskOf(name: string): string {
  return `sweep:${name}`;
}

function isKick(payload: unknown): boolean {
  return typeof payload === "object" && payload !== null && "kick" in payload;
}

function validateSweepName(name: unknown): string {
  if (typeof name !== "string" || !SWEEP_NAME.test(name)) {
    throw new RotaError(
      "INVALID_OPTION",
      `Invalid sweep name ${JSON.stringify(name) ?? String(name)}: use 1-100 characters of letters, digits, "_", ".", ":" or "-".`,
      { details: { field: "name", value: name } },
    );
  }
  return name;
}

function validateSweep(definition: SweepDefinition): SweepDefinition {
  if (typeof definition !== "object" || definition === null) {
    throw new RotaError(
      "INVALID_OPTION",
      "sweeps.define takes { name, maxRunning, pick, perform, remaining, queue?, cron? }.",
      {
        details: { field: "definition" },
      },
    );
  }
  rejectUnknownKeys(definition, SWEEP_KEYS, "sweeps.define");
  validateSweepName(definition.name);
  if (definition.queue !== undefined) validateQueueName(definition.queue);
  wholeNumber("maxRunning", definition.maxRunning, 1, 100_000);
  for (const field of ["pick", "perform", "remaining"] as const) {
    if (typeof definition[field] !== "function") {
      throw new RotaError("INVALID_OPTION", `sweeps.define: ${field} must be a function.`, {
        details: { field },
      });
    }
  }
  if (definition.cron !== undefined && typeof definition.cron !== "string") {
    throw new RotaError(
      "INVALID_OPTION",
      "sweeps.define: cron must be a cron expression (a string).",
      {
        details: { field: "cron" },
      },
    );
  }
  return Object.freeze({ ...definition });
}
