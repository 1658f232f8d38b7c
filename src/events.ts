import { EventEmitter } from "node:events";
import type { PoolClient } from "pg";

/**
 * One typed event map for the whole library, named area:thing:phase.
 * Emitting is cheap when nobody listens: callers check `wants(name)` before
 * building a payload on hot paths. An event of a write is emitted once the
 * write commits: work in a transaction of rota's own emits through
 * HeldEvents (transactionWithEvents, below).
 */
export interface JobRef {
  id: string;
  queue: string;
  task: string;
}

export interface ScheduleExecutionRef {
  scheduleId: string;
  /** The execution's job id. */
  executionId: string;
  /** The grid point it stands for (null for a "trigger now" execution). */
  occurrenceAt: Date | null;
}

export interface RotaEventMap {
  "job:enqueued": { id: string; queue: string; task: string; state: string; inserted: boolean };
  "job:run:start": JobRef & { attempt: number; workerId: string };
  "job:run:success": JobRef & { attempt: number; durationMs: number };
  /** A failed attempt that will be retried at `retryAt`. */
  "job:run:retry": JobRef & { attempt: number; error: string; retryAt: Date };
  /** The last attempt failed: the job is now in the dead-letter state 'failed'. */
  "job:failed": JobRef & { attempt: number; error: string };
  "job:cancelled": { id: string; previousState: string | null };
  "job:rescued": JobRef & { attempt: number; state: string };
  /** A completion or failure was not recorded: the job was rescued from this worker meanwhile. */
  "job:fenced": { id: string; attempt: number; workerId: string };
  "job:lease:lost": { id: string; workerId: string };
  /**
   * A claim found work held back by concurrency limits: jobs of keys at their
   * limit (heldByKey), and the worker's queues at theirs (queuesAtLimit).
   */
  "claim:limited": { workerId: string; heldByKey: number; queuesAtLimit: string[] };
  "worker:error": { workerId: string; error: unknown; during: string };
  /**
   * An operator changed something through the dashboard: who (the token's
   * name), what (`queue.pause`, `job.retry`…), on what, and what came of it.
   */
  "dashboard:action": {
    actor: string;
    action: string;
    target: string;
    ok: boolean;
    result: string;
  };
  /** A schedule occurrence became a planned execution (a job row). */
  "schedule:execution:materialized": ScheduleExecutionRef & { runAt: Date; state: string };
  /** A worker claimed a planned execution: it fires now, `lateMs` after its planned time. */
  "schedule:execution:fired": ScheduleExecutionRef & { runAt: Date; lateMs: number };
  /** An occurrence that will not run: past its catch-up deadline, or `count` of them in one row. */
  "schedule:execution:missed": ScheduleExecutionRef & { count: number };
  /** Skipped by an operator, or by overlap 'skip' while the previous run was still running. */
  "schedule:execution:skipped": ScheduleExecutionRef & { reason: "operator" | "overlap" };
  /** Replaced after the schedule changed (or was paused, disabled or handed back). */
  "schedule:execution:superseded": ScheduleExecutionRef & { reason: string };
  /**
   * One cadence of a fanned-out schedule was planned: an execution per
   * target (`executions` written), spread over `windowMs` by `distribution`.
   */
  "schedule:cadence:materialized": {
    scheduleId: string;
    name: string;
    occurrenceAt: Date;
    executions: number;
    windowMs: number;
    distribution: string;
  };
  /**
   * A schedule's target source was read for a cadence: keys `added` as new
   * targets, targets `removed`, keys `invalid` (empty or too long); or it
   * failed (`error`), and the targets stayed as they were.
   */
  "schedule:targets:refreshed": {
    scheduleId: string;
    name: string;
    added: number;
    removed: number;
    invalid: number;
    error: string | null;
  };
  /** A schedule whose spec does not parse was disabled (once); `error` says why. */
  "schedule:quiesced": { scheduleId: string; name: string; error: string };
  /**
   * The orchestrator finished a batch at its expiry with `open` members
   * still open; its callback job (`callbackJobId`) was enqueued.
   */
  "batch:expired": { batchId: string; callbackJobId: string; open: number };
  "leader:acquired": { lease: string; holder: string; epoch: number };
  "leader:lost": { lease: string; holder: string; epoch: number; reason: string };
  /** One orchestrator step failed; the other steps of the tick still ran. */
  "orchestrator:error": { holder: string; step: string; error: unknown };
  "worker:listen:lost": { workerId: string; error: unknown };
}

export type RotaEventName = keyof RotaEventMap;

export class RotaEvents {
  private readonly emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  on<E extends RotaEventName>(event: E, listener: (payload: RotaEventMap[E]) => void): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  once<E extends RotaEventName>(
    event: E,
    listener: (payload: RotaEventMap[E]) => void,
  ): () => void {
    this.emitter.once(event, listener);
    return () => this.emitter.off(event, listener);
  }

  off<E extends RotaEventName>(event: E, listener: (payload: RotaEventMap[E]) => void): void {
    this.emitter.off(event, listener);
  }

  wants(event: RotaEventName): boolean {
    return this.emitter.listenerCount(event) > 0;
  }

  /** A listener that throws must not break the job pipeline; its error is dropped. */
  emit<E extends RotaEventName>(event: E, payload: RotaEventMap[E]): void {
    if (this.emitter.listenerCount(event) === 0) return;
    try {
      this.emitter.emit(event, payload);
    } catch {
      // listeners are the caller's code; rota's own state is already recorded
    }
  }
}

/** Handlers a part of rota runs for some events of its own (see tapEvents). */
export type EventTaps = { [E in RotaEventName]?: (payload: RotaEventMap[E]) => void };

/**
 * The events as one part of rota (a worker, an orchestrator) emits them,
 * with `taps` run for its own events before they go to the listeners of
 * `events`. This is how the part logs what it did: a listener on the shared
 * events would also hear the other workers and orchestrators of the same
 * Rota. Only the tapped events are wanted for the tap's sake, so emitting
 * stays free for the others (a part taps rare events, never per-job ones).
 */
export function tapEvents(events: RotaEvents, taps: EventTaps): RotaEvents {
  return new TappedEvents(events, taps);
}

/** Events whose listeners are another's: subscribing and `wants` go to `parent`; emitting is the subclass's. */
abstract class EventsOf extends RotaEvents {
  constructor(protected readonly parent: RotaEvents) {
    super();
  }

  override on<E extends RotaEventName>(
    event: E,
    listener: (payload: RotaEventMap[E]) => void,
  ): () => void {
    return this.parent.on(event, listener);
  }

  override once<E extends RotaEventName>(
    event: E,
    listener: (payload: RotaEventMap[E]) => void,
  ): () => void {
    return this.parent.once(event, listener);
  }

  override off<E extends RotaEventName>(
    event: E,
    listener: (payload: RotaEventMap[E]) => void,
  ): void {
    this.parent.off(event, listener);
  }

  override wants(event: RotaEventName): boolean {
    return this.parent.wants(event);
  }
}

class TappedEvents extends EventsOf {
  constructor(
    parent: RotaEvents,
    private readonly taps: EventTaps,
  ) {
    super(parent);
  }

  override wants(event: RotaEventName): boolean {
    return this.taps[event] !== undefined || this.parent.wants(event);
  }

  override emit<E extends RotaEventName>(event: E, payload: RotaEventMap[E]): void {
    const tap = this.taps[event];
    if (tap !== undefined) {
      try {
        tap(payload);
      } catch {
        // a logger that throws must not break the job pipeline either
      }
    }
    this.parent.emit(event, payload);
  }
}

/**
 * The events of writes made in a transaction of rota's own, held until it
 * commits (flush) and dropped when it rolls back: a listener hears only of
 * what was written. (In a transaction of the caller's, rota cannot know
 * when it commits, and announces as it writes.)
 */
export class HeldEvents extends EventsOf {
  private held: (() => void)[] = [];

  override emit<E extends RotaEventName>(event: E, payload: RotaEventMap[E]): void {
    if (this.parent.wants(event)) this.held.push(() => this.parent.emit(event, payload));
  }

  /** The transaction committed: its events go out, in the order they were emitted. */
  flush(): void {
    const held = this.held;
    this.held = [];
    for (const emit of held) emit();
  }
}

/**
 * Runs `work` in a transaction of `db` with events held until it commits
 * (see HeldEvents); when the transaction fails none is heard.
 */
export async function transactionWithEvents<T>(
  db: { transaction<R>(fn: (client: PoolClient) => Promise<R>): Promise<R> },
  events: RotaEvents,
  work: (client: PoolClient, events: RotaEvents) => Promise<T>,
): Promise<T> {
  const held = new HeldEvents(events);
  const result = await db.transaction((client) => work(client, held));
  held.flush();
  return result;
}
