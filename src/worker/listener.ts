import type pg from "pg";
import type { Database } from "../db/database.js";
import { channelName } from "../db/sql.js";

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
 * (database restart, network), it reconnects with backoff; meanwhile the
 * worker polls faster, so nothing waits on a notification that never comes.
 */
export class Listener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private attempt = 0;

  constructor(
    private readonly db: Database,
    private readonly handlers: ListenerHandlers,
  ) {}

  get listening(): boolean {
    return this.client !== null;
  }

  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
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
      const lost = (error?: unknown) => {
        if (this.client !== client) return;
        this.client = null;
        client?.end().catch(() => {});
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
      this.handlers.onStatus(true);
    } catch (error) {
      await client?.end().catch(() => {});
      this.handlers.onStatus(false, error);
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = Math.min(30_000, 250 * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }
}

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
