import { createRequire } from "node:module";
import type * as OTel from "@opentelemetry/api";
import type { QueueInfo } from "../capacity/queues.js";
import { validateMillis } from "../config.js";
import type { ClaimedRow } from "../db/queries/jobs.js";
import { isRotaError, RotaError } from "../errors.js";
import type { RotaEvents } from "../events.js";
import { parseTraceContext, traceContextJson } from "./trace-context.js";

/**
 * OpenTelemetry for rota (docs/telemetry.md), after the messaging semantic
 * conventions: a "send {queue}" span (PRODUCER) per enqueue call whose
 * context is stored on its jobs, a "process {queue}" span (CONSUMER) per
 * handler call linked to the jobs' send spans, the messaging metrics, and
 * rota's own (queue depth, schedule lateness, leader changes, rescues).
 *
 * Enabled by createRota's `telemetry` option and nothing else: only then is
 * @opentelemetry/api loaded (an optional peer dependency), and without it
 * every part holds `null` where a Telemetry would be, so the cost of
 * telemetry being off is one null check per enqueue call and per handler
 * call.
 */
export interface TelemetryOptions {
  /** Where spans go; default the global one registered with @opentelemetry/api (an SDK's). */
  tracerProvider?: TracerProviderLike;
  /** Where metrics go; default the global one registered with @opentelemetry/api. */
  meterProvider?: MeterProviderLike;
  /**
   * The least time between two reads of the queue depth gauge
   * (rota.queue.jobs): each read is `rota.queues.list()`, which counts the
   * jobs table by queue and state. A collection within this time of the last
   * read reports that read again. Default 30 s; 0 turns the gauge off (give
   * it to all processes but one when many collect the same database).
   */
  queueDepthIntervalMs?: number;
}

/**
 * A TracerProvider (or MeterProvider) as far as rota's options type it:
 * structurally, so rota's declarations do not name @opentelemetry/api,
 * which an application without telemetry does not install.
 */
export interface TracerProviderLike {
  getTracer(name: string, version?: string): unknown;
}
export interface MeterProviderLike {
  getMeter(name: string, version?: string): unknown;
}

/** Attribute names, from the messaging semantic conventions and rota's own. */
const SYSTEM = "messaging.system";
const OPERATION_TYPE = "messaging.operation.type";
const OPERATION_NAME = "messaging.operation.name";
const DESTINATION = "messaging.destination.name";
const MESSAGE_ID = "messaging.message.id";
const BATCH_COUNT = "messaging.batch.message_count";
const CLIENT_ID = "messaging.client.id";
const ERROR_TYPE = "error.type";
const TASK = "rota.task";
const ATTEMPT = "rota.attempt";
const SCHEDULE = "rota.schedule.id";
const JOB_STATE = "rota.job.state";
const LEASE = "rota.lease";
const LEADER_CHANGE = "rota.leader.change";

const SYSTEM_NAME = "rota";
/** The semantic conventions' buckets for messaging durations, in seconds. */
const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
/** Schedule lateness runs from milliseconds (a worker waiting) to minutes (none running). */
const LATENESS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const DEFAULT_QUEUE_DEPTH_INTERVAL_MS = 30_000;

/** Loaded once, and only when a Rota is given `telemetry`. */
let api: typeof OTel | null = null;

function loadApi(): typeof OTel {
  if (api !== null) return api;
  try {
    // Synchronous (createRota is): the API's CommonJS build shares its
    // global registrations (providers, context manager) with its ES module
    // build, so spans nest with the application's either way.
    api = createRequire(import.meta.url)("@opentelemetry/api") as typeof OTel;
  } catch (cause) {
    throw new RotaError(
      "TELEMETRY_UNAVAILABLE",
      "The telemetry option needs @opentelemetry/api, which is not installed: npm install @opentelemetry/api (rota does not depend on it; leave telemetry out to run without it).",
      { cause, details: { field: "telemetry" } },
    );
  }
  return api;
}

/** A failure's error.type: a RotaError's code, else the error's class name, else "_OTHER". */
export function errorType(thrown: unknown): string {
  if (isRotaError(thrown)) return thrown.code;
  if (thrown instanceof Error) return thrown.name || thrown.constructor.name || "Error";
  return "_OTHER";
}

export class Telemetry {
  private readonly api: typeof OTel;
  private readonly tracer: OTel.Tracer;
  private readonly meter: OTel.Meter;
  private readonly sentMessages: OTel.Counter;
  private readonly consumedMessages: OTel.Counter;
  private readonly processDuration: OTel.Histogram;
  private readonly lateness: OTel.Histogram;
  private readonly leaderChanges: OTel.Counter;
  private readonly rescuedJobs: OTel.Counter;
  readonly queueDepthIntervalMs: number;

  constructor(options: TelemetryOptions) {
    if (typeof options !== "object" || options === null) {
      throw new RotaError(
        "INVALID_OPTION",
        "telemetry must be an object: { tracerProvider?, meterProvider?, queueDepthIntervalMs? } ({} uses the providers registered with @opentelemetry/api).",
        { details: { field: "telemetry" } },
      );
    }
    this.queueDepthIntervalMs = validateMillis(
      "telemetry.queueDepthIntervalMs",
      options.queueDepthIntervalMs ?? DEFAULT_QUEUE_DEPTH_INTERVAL_MS,
    );
    const otel = loadApi();
    this.api = otel;
    const tracerProvider = (options.tracerProvider ??
      otel.trace.getTracerProvider()) as OTel.TracerProvider;
    const meterProvider = (options.meterProvider ??
      otel.metrics.getMeterProvider()) as OTel.MeterProvider;
    this.tracer = tracerProvider.getTracer(SYSTEM_NAME);
    this.meter = meterProvider.getMeter(SYSTEM_NAME);
    const m = this.meter;
    this.sentMessages = m.createCounter("messaging.client.sent.messages", {
      description: "Jobs an enqueue call tried to write.",
      unit: "{message}",
    });
    this.consumedMessages = m.createCounter("messaging.client.consumed.messages", {
      description: "Jobs handed to a handler (each attempt), with error.type when it failed.",
      unit: "{message}",
    });
    this.processDuration = m.createHistogram("messaging.process.duration", {
      description: "How long a handler call took (a batch task's: the whole call).",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.lateness = m.createHistogram("rota.schedule.lateness", {
      description: "A schedule execution's start minus its planned time.",
      unit: "s",
      advice: { explicitBucketBoundaries: LATENESS_BUCKETS },
    });
    this.leaderChanges = m.createCounter("rota.leader.changes", {
      description: "Leader leases acquired and lost by this process's orchestrators.",
      unit: "{change}",
    });
    this.rescuedJobs = m.createCounter("rota.jobs.rescued", {
      description: "Jobs rescued after their lease expired, by the state they were left in.",
      unit: "{job}",
    });
  }

  /**
   * Runs an enqueue call inside its "send" span, a child of the caller's
   * active span. `write` gets the span's trace context (JSON text, or null
   * when there is no trace) to store on every job it writes; `destinations`
   * counts the call's jobs per queue. One span per call: enqueueMany's
   * batch is one span with messaging.batch.message_count.
   */
  async send<T>(
    destinations: ReadonlyMap<string, number>,
    batch: boolean,
    write: (traceContext: string | null) => Promise<T>,
    messageId?: (result: T) => string,
  ): Promise<T> {
    const otel = this.api;
    const count = sum(destinations);
    const destination =
      destinations.size === 1 ? (destinations.keys().next().value as string) : null;
    const attributes: OTel.Attributes = {
      [SYSTEM]: SYSTEM_NAME,
      [OPERATION_TYPE]: "send",
      [OPERATION_NAME]: "send",
    };
    if (destination !== null) attributes[DESTINATION] = destination;
    // The conventions leave the count off an operation on one message.
    if (batch && count !== 1) attributes[BATCH_COUNT] = count;
    const parent = otel.context.active();
    const span = this.tracer.startSpan(
      destination === null ? "send" : `send ${destination}`,
      { kind: otel.SpanKind.PRODUCER, attributes },
      parent,
    );
    const ids = span.spanContext();
    const traceContext = traceContextJson(ids, ids.traceState?.serialize());
    let failure: string | null = null;
    try {
      const result = await otel.context.with(otel.trace.setSpan(parent, span), () =>
        write(traceContext),
      );
      if (messageId !== undefined) span.setAttribute(MESSAGE_ID, messageId(result));
      return result;
    } catch (error) {
      failure = errorType(error);
      fail(otel, span, error, failure);
      throw error;
    } finally {
      span.end();
      for (const [queue, n] of destinations) {
        const counted: OTel.Attributes = {
          [SYSTEM]: SYSTEM_NAME,
          [OPERATION_NAME]: "send",
          [DESTINATION]: queue,
        };
        if (failure !== null) counted[ERROR_TYPE] = failure;
        this.sentMessages.add(n, counted);
      }
    }
  }

  /**
   * A handler call's "process" span (a new trace, linked to each job's
   * send span), begun now. Single jobs carry their id, task and attempt;
   * a batch task's call carries one link per job.
   */
  process(rows: readonly ClaimedRow[], workerId: string, batch: boolean): ProcessSpan {
    const otel = this.api;
    const first = rows[0] as ClaimedRow;
    const sameQueue = rows.every((r) => r.queue === first.queue);
    const attributes: OTel.Attributes = {
      [SYSTEM]: SYSTEM_NAME,
      [OPERATION_TYPE]: "process",
      [OPERATION_NAME]: "process",
      [CLIENT_ID]: workerId,
      [TASK]: first.task,
    };
    if (sameQueue) attributes[DESTINATION] = first.queue;
    if (!batch) {
      attributes[MESSAGE_ID] = first.id;
      attributes[ATTEMPT] = first.attempts;
      if (first.schedule_id !== null) attributes[SCHEDULE] = first.schedule_id;
    } else if (rows.length !== 1) {
      attributes[BATCH_COUNT] = rows.length;
    }
    const links: OTel.Link[] = [];
    for (const row of rows) {
      const stored = parseTraceContext(row.trace_context);
      if (stored === null) continue;
      links.push({
        context: {
          traceId: stored.traceId,
          spanId: stored.spanId,
          traceFlags: stored.traceFlags,
          isRemote: true,
          ...(stored.tracestate ? { traceState: otel.createTraceState(stored.tracestate) } : {}),
        },
        attributes: { [MESSAGE_ID]: row.id },
      });
    }
    const span = this.tracer.startSpan(
      sameQueue ? `process ${first.queue}` : "process",
      { kind: otel.SpanKind.CONSUMER, attributes, links },
      // Not the caller's context: the worker's claim loop is nobody's child.
      otel.ROOT_CONTEXT,
    );
    return new OpenProcessSpan(this, otel, span, sameQueue ? first.queue : null, first.task);
  }

  /** @internal ProcessSpan's: one job's attempt counted as consumed. */
  countConsumed(queue: string, task: string, failure: string | null): void {
    const attributes: OTel.Attributes = {
      [SYSTEM]: SYSTEM_NAME,
      [OPERATION_NAME]: "process",
      [DESTINATION]: queue,
      [TASK]: task,
    };
    if (failure !== null) attributes[ERROR_TYPE] = failure;
    this.consumedMessages.add(1, attributes);
  }

  /** @internal ProcessSpan's: a handler call's duration. */
  recordDuration(
    seconds: number,
    queue: string | null,
    task: string,
    failure: string | null,
  ): void {
    const attributes: OTel.Attributes = {
      [SYSTEM]: SYSTEM_NAME,
      [OPERATION_NAME]: "process",
      [TASK]: task,
    };
    if (queue !== null) attributes[DESTINATION] = queue;
    if (failure !== null) attributes[ERROR_TYPE] = failure;
    this.processDuration.record(seconds, attributes);
  }

  /**
   * The metrics rota's events already carry: rescued jobs (job:rescued),
   * leader changes (leader:acquired, leader:lost) and schedule lateness
   * (schedule:execution:fired). Returns the unsubscribe.
   */
  observe(events: RotaEvents): () => void {
    const offs = [
      events.on("job:rescued", (e) =>
        this.rescuedJobs.add(1, {
          [SYSTEM]: SYSTEM_NAME,
          [DESTINATION]: e.queue,
          [TASK]: e.task,
          [JOB_STATE]: e.state,
        }),
      ),
      events.on("leader:acquired", (e) =>
        this.leaderChanges.add(1, { [LEASE]: e.lease, [LEADER_CHANGE]: "acquired" }),
      ),
      events.on("leader:lost", (e) =>
        this.leaderChanges.add(1, { [LEASE]: e.lease, [LEADER_CHANGE]: "lost" }),
      ),
      events.on("schedule:execution:fired", (e) =>
        this.lateness.record(Math.max(0, e.lateMs) / 1000),
      ),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /**
   * The queue depth gauge (rota.queue.jobs: jobs by queue and state), read
   * through `read` (rota.queues.list) when a metric reader collects, at most
   * once per queueDepthIntervalMs; a collection in between reports the last
   * read. With no meter provider registered nothing collects, so nothing
   * reads. A read that fails reports nothing that time (stale numbers would
   * look current) and is handed to `onError`. Returns the removal (none with
   * queueDepthIntervalMs 0).
   */
  observeQueueDepth(
    read: () => Promise<QueueInfo[]>,
    onError: (error: unknown) => void,
  ): () => void {
    if (this.queueDepthIntervalMs === 0) return () => {};
    const gauge = this.meter.createObservableGauge("rota.queue.jobs", {
      description:
        "Jobs by queue and state (read from the jobs table at most every queueDepthIntervalMs).",
      unit: "{job}",
    });
    let last: QueueInfo[] = [];
    let readAt = Number.NEGATIVE_INFINITY;
    let reading: Promise<void> | null = null;
    const callback = async (result: OTel.ObservableResult) => {
      if (performance.now() - readAt >= this.queueDepthIntervalMs) {
        // Collections that overlap share one read.
        reading ??= read()
          .then(
            (queues) => {
              last = queues;
            },
            (error: unknown) => {
              last = [];
              onError(error);
            },
          )
          .finally(() => {
            readAt = performance.now();
            reading = null;
          });
        await reading;
      }
      for (const queue of last) {
        for (const [state, count] of Object.entries(queue.counts)) {
          result.observe(count, {
            [SYSTEM]: SYSTEM_NAME,
            [DESTINATION]: queue.name,
            [JOB_STATE]: state,
          });
        }
      }
    };
    gauge.addCallback(callback);
    return () => gauge.removeCallback(callback);
  }
}

/**
 * One handler call's "process" span. Each job's outcome is counted as it is
 * settled; end() closes the span, ERROR with error.type when any job of the
 * call failed (the first failure's type), and records the call's duration.
 */
export interface ProcessSpan {
  /** Runs the handler with this span active, so the handler's own spans are its children. */
  run<T>(handler: () => T): T;
  /** One job's outcome: `thrown` is what it failed with. */
  settled(row: ClaimedRow, failed: boolean, thrown?: unknown): void;
  end(): void;
}

// Not exported, nor is anything typed with @opentelemetry/api: rota's
// declarations must not name a package an application without telemetry
// does not have.
class OpenProcessSpan implements ProcessSpan {
  private readonly started = performance.now();
  private failure: string | null = null;
  private firstThrown: unknown = undefined;
  private ended = false;

  constructor(
    private readonly telemetry: Telemetry,
    private readonly otel: typeof OTel,
    private readonly span: OTel.Span,
    private readonly queue: string | null,
    private readonly task: string,
  ) {}

  run<T>(handler: () => T): T {
    const otel = this.otel;
    return otel.context.with(otel.trace.setSpan(otel.ROOT_CONTEXT, this.span), handler);
  }

  settled(row: ClaimedRow, failed: boolean, thrown?: unknown): void {
    if (this.ended) return;
    const type = failed ? errorType(thrown) : null;
    if (type !== null && this.failure === null) {
      this.failure = type;
      this.firstThrown = thrown;
    }
    this.telemetry.countConsumed(row.queue, row.task, type);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.failure !== null) fail(this.otel, this.span, this.firstThrown, this.failure);
    this.span.end();
    const seconds = (performance.now() - this.started) / 1000;
    this.telemetry.recordDuration(seconds, this.queue, this.task, this.failure);
  }
}

/** Marks a span failed: status ERROR with the message, error.type, and the exception event. */
function fail(otel: typeof OTel, span: OTel.Span, thrown: unknown, type: string): void {
  span.setAttribute(ERROR_TYPE, type);
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  span.setStatus({ code: otel.SpanStatusCode.ERROR, message });
  if (thrown instanceof Error) span.recordException(thrown);
}

function sum(counts: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return total;
}
