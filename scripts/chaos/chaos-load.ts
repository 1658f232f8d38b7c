/**
 * The steady load of a chaos run, while the faults go on: plain, delayed,
 * retrying, limited and keyed jobs; batches with a fan-in callback; updates
 * to the captured user table. (The schedules fire by themselves.)
 *
 * Every job the run knows committed is written to chaos.enqueued, the ledger
 * the checks hold the end state against. Two ways in, as applications use
 * rota:
 * - in the run's own transaction (`client`), with the ledger rows in the same
 *   transaction: the job is in the ledger if and only if it committed, even
 *   when the commit's reply is lost;
 * - on rota's own pool (its connections are among those the run terminates):
 *   a resolved enqueue is committed and goes into the ledger after; one that
 *   fails may or may not have committed, so its payload's token is kept in
 *   chaos.ambiguous and it is not counted (the checks report how many of
 *   those ran anyway).
 */
import type pg from "pg";
import type { Rota } from "../../src/client.js";
import type { EnqueueSpec } from "../../src/queue/enqueue.js";
import type { EnqueueOptions } from "../../src/queue/job-options.js";
import { ITEM_COUNT, KEY_LIMITS, QUEUE_LIMIT } from "./chaos-setup.js";
import type { SeededRandom } from "./seeded-random.js";

export type JobKind = "plain" | "slow" | "delayed" | "retrying" | "limited" | "keyed" | "member";

export interface LoadCounts {
  /** Jobs in the ledger, by kind. */
  enqueued: Record<string, number>;
  /** Enqueues that failed without saying whether they committed. */
  ambiguous: number;
  /** Enqueue calls or transactions that failed (the database away, a connection terminated). */
  failedCalls: number;
  batches: number;
  itemUpdates: number;
}

/** Every job's attempts: enough that kills alone never use them up. */
const MAX_ATTEMPTS = 10;
const BACKOFF = { kind: "fixed", delayMs: 300 } as const;

interface Kind {
  kind: JobKind;
  /** Its share of the jobs: a roll in [0, 1) below this and above the previous kind's. */
  upTo: number;
  make(r: SeededRandom): {
    task: string;
    payload: Record<string, unknown>;
    options: EnqueueOptions;
  };
}

/** The jobs the load enqueues, in proportion. */
const KINDS: readonly Kind[] = [
  { kind: "plain", upTo: 0.3, make: (r) => job("chaos.job", { ms: r.int(5, 80) }, "plain") },
  // Long enough that a kill often lands mid-run: the job must run again.
  { kind: "slow", upTo: 0.38, make: (r) => job("chaos.job", { ms: r.int(1_000, 3_000) }, "plain") },
  {
    kind: "delayed",
    upTo: 0.52,
    make: (r) => job("chaos.job", { ms: r.int(5, 80) }, "plain", { delayMs: r.int(500, 15_000) }),
  },
  {
    kind: "retrying",
    upTo: 0.66,
    make: (r) => job("chaos.job", { ms: r.int(5, 80), failUntil: r.int(1, 2) }, "plain"),
  },
  {
    kind: "limited",
    upTo: 0.82,
    make: (r) =>
      job(
        "chaos.limited",
        { ms: r.int(50, 400), failUntil: r.chance(0.1) ? 1 : 0 },
        QUEUE_LIMIT.queue,
      ),
  },
  {
    kind: "keyed",
    upTo: 1,
    make: (r) => {
      const key = r.pick(Object.keys(KEY_LIMITS));
      // The key in the payload too: the handler records the payload, and the
      // checks group the runs by it.
      return job(
        "chaos.keyed",
        { ms: r.int(50, 300), failUntil: r.chance(0.1) ? 1 : 0, key },
        "keyed",
        {
          concurrencyKey: key,
          concurrencyLimit: KEY_LIMITS[key],
        },
      );
    },
  },
];
/** Where the limited and keyed kinds begin among the rolls. */
const LIMITED_FROM = 0.66;

function job(
  task: string,
  payload: Record<string, unknown>,
  queue: string,
  options: EnqueueOptions = {},
) {
  return { task, payload, options: { ...options, queue } };
}

export class ChaosLoad {
  readonly counts: LoadCounts = {
    enqueued: {},
    ambiguous: 0,
    failedCalls: 0,
    batches: 0,
    itemUpdates: 0,
  };
  private running = false;
  private loops: Promise<void>[] = [];
  private token = 0;

  constructor(
    private readonly rota: Rota,
    /** The run's own connections ("chaos driver"): the ledger, the user table. */
    private readonly pool: pg.Pool,
    private readonly random: SeededRandom,
  ) {}

  start(): void {
    this.running = true;
    this.loops = [
      this.every(120, 260, () => this.enqueueJobs()),
      this.every(2_500, 5_000, () => this.enqueueBatch()),
      this.every(150, 350, () => this.updateItems()),
    ];
  }

  /** Stops the loops and waits for the calls in flight (each bounded by its retries). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async every(minMs: number, maxMs: number, step: () => Promise<void>): Promise<void> {
    while (this.running) {
      try {
        await step();
      } catch {
        this.counts.failedCalls++;
      }
      await sleep(this.random.int(minMs, maxMs));
    }
  }

  /**
   * One job, or a few at once, of a random kind, by a random way in; now and
   * then a burst of limited and keyed jobs, more than their limits let run
   * at once, so the limits are pressed, not merely reached.
   */
  private async enqueueJobs(): Promise<void> {
    const burst = this.random.chance(0.12);
    const count = burst
      ? this.random.int(6, 10)
      : this.random.chance(0.2)
        ? this.random.int(2, 6)
        : 1;
    const specs = Array.from({ length: count }, () => this.jobSpec(burst));
    if (this.random.chance(0.5)) {
      await this.inTransaction(async (client) => {
        const jobs = await this.rota.enqueueMany(
          specs.map(({ spec }) => spec),
          { client },
        );
        await this.ledger(
          client,
          jobs.map((job, i) => ({ id: job.id, kind: specs[i]?.kind as JobKind })),
          "transaction",
        );
      });
      for (const { kind } of specs) this.count(kind);
      return;
    }
    for (const { spec, kind, token } of specs) {
      let id: string;
      try {
        id = (await this.rota.enqueue(spec.task as string, spec.payload, spec.options)).id;
      } catch (error) {
        this.counts.ambiguous++;
        await retried(() =>
          this.pool.query(
            "insert into chaos.ambiguous (token, kind) values ($1, $2) on conflict do nothing",
            [token, kind],
          ),
        );
        throw error;
      }
      await retried(() =>
        this.pool.query(
          "insert into chaos.enqueued (job_id, kind, via) values ($1, $2, 'pool') on conflict do nothing",
          [id, kind],
        ),
      );
      this.count(kind);
    }
  }

  /** A job of a random kind; with `limited`, one of the limited queue or a key. */
  private jobSpec(limited = false): { spec: EnqueueSpec; kind: JobKind; token: string } {
    const token = `t${++this.token}`;
    const r = this.random;
    const roll = limited ? r.between(LIMITED_FROM, 1) : r.next();
    const { kind, make } = KINDS.find((k) => roll < k.upTo) ?? (KINDS.at(-1) as Kind);
    const { task, payload, options } = make(r);
    return {
      spec: {
        task,
        payload: { ...payload, token },
        options: { maxAttempts: MAX_ATTEMPTS, backoff: BACKOFF, ...options },
      },
      kind,
      token,
    };
  }

  /** A batch of members (some failing their first attempt) and its callback, in one transaction. */
  private async enqueueBatch(): Promise<void> {
    const members = Array.from({ length: this.random.int(4, 12) }, () => ({
      task: "chaos.job",
      payload: {
        ms: this.random.int(5, 120),
        failUntil: this.random.chance(0.2) ? 1 : 0,
        token: `t${++this.token}`,
      },
      options: { queue: "plain", maxAttempts: MAX_ATTEMPTS, backoff: BACKOFF },
    }));
    await this.inTransaction(async (client) => {
      const batch = await this.rota.batches.enqueue(members, {
        onComplete: {
          task: "chaos.batch-done",
          queue: "batch",
          payload: { members: members.length },
        },
        client,
      });
      await client.query("insert into chaos.batches (batch_id, members) values ($1, $2)", [
        batch.id,
        members.length,
      ]);
      await this.ledger(
        client,
        batch.jobs.map((job) => ({ id: job.id, kind: "member" as const, batch: batch.id })),
        "transaction",
      );
    });
    this.counts.batches++;
    this.counts.enqueued.member = (this.counts.enqueued.member ?? 0) + members.length;
  }

  /** A few rows of the captured table get a new version. */
  private async updateItems(): Promise<void> {
    const ids = Array.from({ length: this.random.int(1, 3) }, () => this.random.int(1, ITEM_COUNT));
    await this.pool.query("update chaos.items set version = version + 1 where id = any($1)", [ids]);
    this.counts.itemUpdates += new Set(ids).size;
  }

  private async ledger(
    client: pg.PoolClient,
    jobs: { id: string; kind: JobKind; batch?: string }[],
    via: "transaction" | "pool",
  ): Promise<void> {
    await client.query(
      `insert into chaos.enqueued (job_id, kind, via, batch_id)
       select * from unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])`,
      [
        jobs.map((j) => j.id),
        jobs.map((j) => j.kind),
        jobs.map(() => via),
        jobs.map((j) => j.batch ?? null),
      ],
    );
  }

  private async inTransaction(fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("begin");
      await fn(client);
      await client.query("commit");
    } catch (error) {
      broken = error as Error;
      await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      // A client whose transaction failed may have lost its connection: dropped, not reused.
      client.release(broken);
    }
  }

  private count(kind: JobKind): void {
    this.counts.enqueued[kind] = (this.counts.enqueued[kind] ?? 0) + 1;
  }
}

/**
 * Runs `write` until it succeeds, for up to two minutes: the ledger must hold
 * every job the run knows committed, also when the database restarted
 * between the enqueue and this write.
 */
async function retried(write: () => Promise<unknown>): Promise<void> {
  const giveUpAt = Date.now() + 120_000;
  for (let attempt = 0; ; attempt++) {
    try {
      await write();
      return;
    } catch (error) {
      if (Date.now() > giveUpAt) throw error;
      await sleep(Math.min(1_000, 25 * 2 ** attempt));
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
