import type pg from "pg";
import { type Database, endClient } from "../db/database.js";
import { channelName } from "../db/sql.js";
import { RotaError } from "../errors.js";

/** What a jobs wake-up says (see parseWake). */
export interface Wake {
  /** The queue that got jobs ("*": any queue, e.g. after a clock shift). */
  queue: string;
  /** The one job, when the wake-up named it (a lone enqueue). */
  jobId: string | null;
  /** Milliseconds until the queue's earliest new job is due; 0 when one is due now. */
  dueInMs: number;
}

export interface ListenerHandlers {
  onJobs(wake: Wake): void;
  /** A running job was asked to stop. */
  onCancel(jobId: string): void;
  /** A queue was paused (rota.queues.pause). */
  onPause(queue: string): void;
  /** The connection was lost (reconnecting) or came back. */
  onStatus(listening: boolean, error?: unknown): void;
}

/**
 * One dedicated connection that LISTENs for rota's wake-ups. When it drops
 * (database restart, pg_terminate_backend, network), it reconnects with
 * backoff; meanwhile the worker polls faster, so nothing waits on a
 * notification that never comes.
 *
 * A connection can also go silent without dropping (a firewall or NAT that
 * lost its state drops every packet; TCP keepalive takes many minutes to
 * notice, if the peer's kernel is not the one still answering). An idle
 * LISTEN connection would then wait for ever, so it is checked with a
 * `select 1` every `checkMs` (0: never), given `checkMs` to answer: a
 * silent connection is given up within about twice `checkMs`.
 *
 *   connecting ──LISTEN done──▶ listening ──error, end, failed check──▶ waiting
 *        ▲                                                               │
 *        └───────────── after 250 ms × 2^n (≤ 10 s, jittered) ◀──────────┘
 */
export class Listener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private connects = 0;
  private lastError: { error: unknown; at: Date } | null = null;

  constructor(
    private readonly db: Database,
    private readonly handlers: ListenerHandlers,
    private readonly checkMs: number,
  ) {}

  get listening(): boolean {
    return this.client !== null;
  }

  /** Connection attempts so far (the first included). */
  get attempts(): number {
    return this.connects;
  }

  /** Why the connection was last lost or could not be made, and when. */
  get lastLoss(): { error: unknown; at: Date } | null {
    return this.lastError;
  }

  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    const client = this.client;
    this.client = null;
    if (client) await endClient(client, STOP_GOODBYE_MS);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.connects++;
    const jobs = channelName(this.db.schema, "jobs");
    const cancel = channelName(this.db.schema, "cancel");
    const queues = channelName(this.db.schema, "queues");
    let client: pg.Client | null = null;
    try {
      client = await this.db.dedicatedClient();
      client.on("notification", (message) => {
        if (message.channel === jobs) {
          this.handlers.onJobs(parseWake(message.payload ?? "*"));
        } else if (message.channel === cancel && message.payload) {
          this.handlers.onCancel(message.payload);
        } else if (message.channel === queues && message.payload?.startsWith("pause ")) {
          this.handlers.onPause(message.payload.slice("pause ".length));
        }
      });
      const connected = client;
      const lost = (error?: unknown) => {
        if (this.client !== connected) return;
        this.client = null;
        if (this.checkTimer) clearInterval(this.checkTimer);
        this.checkTimer = null;
        // Closed at once: a connection that failed a check has a peer that
        // does not answer, and one that broke has none.
        void endClient(connected, 0);
        this.lastError = { error, at: new Date() };
        this.handlers.onStatus(false, error);
        this.scheduleReconnect();
      };
      client.on("error", lost);
      client.on("end", () => lost(new Error("LISTEN connection ended")));
      await client.query(`listen "${jobs}"; listen "${cancel}"; listen "${queues}"`);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.client = client;
      this.attempt = 0;
      if (this.checkMs > 0) this.watch(connected, lost);
      this.handlers.onStatus(true);
    } catch (error) {
      await client?.end().catch(() => {});
      this.lastError = { error, at: new Date() };
      this.handlers.onStatus(false, error);
      this.scheduleReconnect();
    }
  }

  /** Checks the connection every checkMs, one check at a time; a check that fails or times out loses it. */
  private watch(client: pg.Client, lost: (error: unknown) => void): void {
    let checking = false;
    this.checkTimer = setInterval(() => {
      if (checking) return;
      checking = true;
      // query_timeout: pg gives up on the check (and the connection is
      // then ended) when no answer comes, which is what a silent peer does.
      client
        .query({ text: "select 1", query_timeout: this.checkMs } as pg.QueryConfig)
        .then(
          () => {},
          (error: unknown) =>
            lost(
              error instanceof Error && error.message === "Query read timeout"
                ? new RotaError(
                    "QUERY_TIMEOUT",
                    `The LISTEN connection did not answer a check within ${this.checkMs} ms (queryTimeoutMs); it was dropped and is made again.`,
                    { cause: error },
                  )
                : error,
            ),
        )
        .finally(() => {
          checking = false;
        });
    }, this.checkMs);
    this.checkTimer.unref();
  }

  /**
   * Waits 250 ms, doubling per failed attempt up to 10 s, less up to a
   * quarter at random so that the workers of a fleet do not all come back
   * in the same instant. Capped at 10 s rather than longer: while LISTEN is
   * down the worker polls every fallbackPollMs, which costs more than a
   * connection attempt.
   */
  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const ceiling = Math.min(RECONNECT_MAX_MS, 250 * 2 ** this.attempt++);
    const delay = Math.round(ceiling * (1 - Math.random() / 4));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }
}

/** How long stop() waits for the server to see the LISTEN connection off before closing its socket. */
const STOP_GOODBYE_MS = 1_000;
/** The longest wait between two attempts to connect LISTEN again. */
const RECONNECT_MAX_MS = 10_000;

/**
 * A jobs wake-up: "<queue>"; "<queue> <id>" for one job due now (a lone
 * enqueue); "<queue> +<ms>" when the queue's new jobs are all due later, the
 * earliest in that many milliseconds (notify_due in the migrations). Queue
 * names have no spaces, but the text after the last space is only read as
 * an id or a delay when it has that form, so an odd name written to the
 * table by hand still wakes its queue.
 */
export function parseWake(payload: string): Wake {
  const space = payload.lastIndexOf(" ");
  if (space > 0) {
    const last = payload.slice(space + 1);
    const queue = payload.slice(0, space);
    if (/^[0-9]+$/.test(last)) return { queue, jobId: last, dueInMs: 0 };
    if (/^\+[0-9]+$/.test(last)) return { queue, jobId: null, dueInMs: Number(last.slice(1)) };
  }
  return { queue: payload, jobId: null, dueInMs: 0 };
}
