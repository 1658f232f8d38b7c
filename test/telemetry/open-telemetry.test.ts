// OpenTelemetry through createRota's `telemetry` option, read back from the
// SDK's in-memory exporter and a metric reader collected on demand: the send
// span is a child of the caller's span and its context is stored on the job;
// the process span links to it; a failure is ERROR with error.type; the
// messaging metrics and rota's own are counted.
import { createRequire } from "node:module";
import { context, type SpanContext, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { silentLogger } from "../../src/logger.js";
import { defineBatchTask, defineTask, type TaskList } from "../../src/task.js";
import type { Worker } from "../../src/worker/worker.js";
import { dropSchema, migratedSchema, type TestSchema } from "../helpers/database.js";
import { events, nextEvent } from "../helpers/events.js";

/** A reader collected by the test itself: no export interval, no timer. */
class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const exporter = new InMemorySpanExporter();
const tracerProvider = new TracerProvider({
  spanProcessors: [new SimpleSpanProcessor({ exporter })],
});
const reader = new TestReader();
const meterProvider = new MeterProvider({ readers: [reader] });
const app = tracerProvider.getTracer("app");

const ok = defineTask<{ n: number }>({
  name: "tel.ok",
  queue: "tel",
  handler: async () => {
    // A span the handler makes: a child of its process span.
    app.startSpan("handler work").end();
  },
});
const broken = defineTask<{ n: number }>({
  name: "tel.broken",
  queue: "tel",
  maxAttempts: 1,
  handler: async () => {
    throw new TypeError("the handler broke");
  },
});
const batched = defineBatchTask<{ n: number }>({
  name: "tel.batch",
  queue: "tel.batch",
  batch: { size: 3, waitMs: 5_000 },
  batchHandler: async () => {},
});

let t: TestSchema;
let rota: Rota;
let worker: Worker | null = null;

beforeAll(async () => {
  // The application's context manager: what makes a span "active" across awaits.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  t = await migratedSchema();
  rota = new Rota({
    connection: t.url,
    schema: t.schema,
    logger: silentLogger,
    telemetry: { tracerProvider, meterProvider, queueDepthIntervalMs: 60_000 },
  });
});
beforeEach(async () => {
  await worker?.stop();
  worker = null;
  exporter.reset();
});
afterAll(async () => {
  await worker?.stop();
  await rota.close();
  await t.rota.close();
  await dropSchema(t.url, t.schema);
  context.disable();
});

async function startWorker(
  tasks: TaskList = [ok, broken],
  queues = ["tel", "tel.metrics"],
): Promise<void> {
  worker = rota.worker({
    tasks,
    queues,
    workerId: "w-tel",
    rescueIntervalMs: 0,
    statsIntervalMs: 0,
  });
  await worker.start();
}

async function finishedSpans(): Promise<ReadableSpan[]> {
  await tracerProvider.forceFlush();
  return exporter.getFinishedSpans();
}

function spanNamed(spans: ReadableSpan[], name: string, messageId?: string): ReadableSpan {
  const found = spans.filter(
    (s) =>
      s.name === name &&
      (messageId === undefined || s.attributes["messaging.message.id"] === messageId),
  );
  expect(found, `one span "${name}"`).toHaveLength(1);
  return found[0] as ReadableSpan;
}

function traceparent(ids: SpanContext): string {
  return `00-${ids.traceId}-${ids.spanId}-0${ids.traceFlags}`;
}

async function storedContexts(ids: string[]): Promise<unknown[]> {
  const result = await databaseOf(rota).pool.query(
    `select trace_context from "${t.schema}".jobs where id = any($1::bigint[]) order by id`,
    [ids],
  );
  return result.rows.map((r) => r.trace_context);
}

describe("OpenTelemetry", () => {
  it("a job enqueued in an active span: send is its child and is stored; process links to it", async () => {
    let requestIds: SpanContext | undefined;
    const job = await app.startActiveSpan("request", async (span) => {
      requestIds = span.spanContext();
      try {
        return await rota.enqueue(ok, { n: 1 });
      } finally {
        span.end();
      }
    });
    const spans = await finishedSpans();
    const send = spanNamed(spans, "send tel");
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.parentSpanContext?.spanId).toBe(requestIds?.spanId);
    expect(send.spanContext().traceId).toBe(requestIds?.traceId);
    expect(send.attributes).toEqual({
      "messaging.system": "rota",
      "messaging.operation.type": "send",
      "messaging.operation.name": "send",
      "messaging.destination.name": "tel",
      "messaging.message.id": job.id,
    });
    // The context stored on the job is the send span's, as a W3C traceparent.
    expect(await storedContexts([job.id])).toEqual([
      { traceparent: traceparent(send.spanContext()) },
    ]);

    const succeeded = nextEvent(rota.events, "job:run:success", (e) => e.id === job.id);
    await startWorker();
    await succeeded;
    const after = await finishedSpans();
    const process = spanNamed(after, "process tel", job.id);
    expect(process.kind).toBe(SpanKind.CONSUMER);
    // Linked, not parented: the process span starts a trace of its own.
    expect(process.parentSpanContext).toBeUndefined();
    expect(process.spanContext().traceId).not.toBe(send.spanContext().traceId);
    expect(process.links).toHaveLength(1);
    expect(process.links[0]?.context).toMatchObject({
      traceId: send.spanContext().traceId,
      spanId: send.spanContext().spanId,
    });
    expect(process.attributes).toEqual({
      "messaging.system": "rota",
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.destination.name": "tel",
      "messaging.message.id": job.id,
      "messaging.client.id": "w-tel",
      "rota.task": "tel.ok",
      "rota.attempt": 1,
    });
    expect(process.status.code).toBe(SpanStatusCode.UNSET);
    // The handler runs with its process span active.
    const work = spanNamed(after, "handler work");
    expect(work.parentSpanContext?.spanId).toBe(process.spanContext().spanId);
  });

  it("a failing job's process span is ERROR with error.type and the exception", async () => {
    await startWorker();
    const failed = events(rota.events, "job:failed", 1, (e) => e.task === "tel.broken");
    const job = await rota.enqueue(broken, { n: 2 });
    await failed;
    const process = spanNamed(await finishedSpans(), "process tel", job.id);
    expect(process.status).toEqual({ code: SpanStatusCode.ERROR, message: "the handler broke" });
    expect(process.attributes["error.type"]).toBe("TypeError");
    expect(process.events.map((e) => e.name)).toEqual(["exception"]);
  });

  it("enqueueMany is one send span for the batch; every job (by INSERT or COPY) stores its context", async () => {
    const few = await rota.enqueueMany(
      [1, 2, 3].map((n) => ({ task: "tel.idle", payload: { n }, options: { queue: "tel.idle" } })),
    );
    const many = await rota.enqueueMany(
      Array.from({ length: 600 }, (_, n) => ({
        task: "tel.idle",
        payload: { n },
        options: { queue: "tel.copy" },
      })),
    );
    const spans = await finishedSpans();
    const small = spanNamed(spans, "send tel.idle");
    expect(small.attributes["messaging.batch.message_count"]).toBe(3);
    expect(small.attributes["messaging.message.id"]).toBeUndefined();
    const stored = { traceparent: traceparent(small.spanContext()) };
    expect(await storedContexts(few.map((j) => j.id))).toEqual([stored, stored, stored]);

    const copied = spanNamed(spans, "send tel.copy");
    expect(copied.attributes["messaging.batch.message_count"]).toBe(600);
    const counts = await databaseOf(rota).pool.query(
      `select count(*)::int as n, count(distinct trace_context)::int as contexts,
              min(trace_context->>'traceparent') as traceparent
       from "${t.schema}".jobs where id = any($1::bigint[])`,
      [many.map((j) => j.id)],
    );
    expect(counts.rows[0]).toEqual({
      n: 600,
      contexts: 1,
      traceparent: traceparent(copied.spanContext()),
    });
  });

  it("a batch task's call is one process span with a link per job", async () => {
    const jobs = [];
    for (let n = 0; n < 3; n++) jobs.push(await rota.enqueue(batched, { n }));
    const sends = (await finishedSpans()).filter((s) => s.name === "send tel.batch");
    expect(sends).toHaveLength(3);
    const done = events(rota.events, "job:run:success", 3, (e) => e.task === "tel.batch");
    await startWorker([batched], ["tel.batch"]);
    await done;
    const process = spanNamed(await finishedSpans(), "process tel.batch");
    expect(process.attributes).toMatchObject({
      "messaging.operation.type": "process",
      "messaging.batch.message_count": 3,
      "rota.task": "tel.batch",
    });
    expect(process.attributes["messaging.message.id"]).toBeUndefined();
    const linked = process.links.map((l) => [
      l.attributes?.["messaging.message.id"],
      l.context.spanId,
    ]);
    const sent = jobs.map((j) => [
      j.id,
      spanNamed(sends, "send tel.batch", j.id).spanContext().spanId,
    ]);
    expect(linked.sort()).toEqual(sent.sort());
  });

  it("counts the messaging metrics and rota's own: depth, lateness, leader changes, rescues", async () => {
    await startWorker();
    const settled = events(rota.events, "job:run:success", 1, (e) => e.queue === "tel.metrics");
    const failed = events(rota.events, "job:failed", 1, (e) => e.queue === "tel.metrics");
    await rota.enqueue(ok, { n: 1 }, { queue: "tel.metrics" });
    await rota.enqueue(broken, { n: 2 }, { queue: "tel.metrics" });
    // No worker serves tel.depth: its jobs wait, for the depth gauge.
    await rota.enqueueMany(
      [1, 2].map((n) => ({ task: "tel.idle", payload: { n }, options: { queue: "tel.depth" } })),
    );
    // A schedule execution fires (a "trigger now" run), late by its claim.
    await rota.schedules.upsert({
      name: "tel.schedule",
      task: "tel.ok",
      queue: "tel",
      cron: "0 0 1 1 *",
      horizon: 1,
    });
    const fired = nextEvent(rota.events, "schedule:execution:fired");
    await rota.schedules.trigger("tel.schedule");
    await Promise.all([settled, failed, fired]);
    // A leader comes and goes; a job whose worker vanished is rescued.
    const orchestrator = rota.orchestrator({
      holder: "o-tel",
      leaseName: "tel",
      leaseTtlMs: 60_000,
    });
    await orchestrator.tick();
    await orchestrator.stop();
    const lost = await rota.enqueue("tel.vanished", {}, { queue: "tel.rescue" });
    await databaseOf(rota).pool.query(
      `update "${t.schema}".jobs set state = 'running', attempts = 1, lease_holder = 'gone',
         started_at = now(), lease_expires_at = now() - interval '1 minute' where id = $1`,
      [lost.id],
    );
    await rota.rescueExpired();

    const metrics = await collect();
    expect(
      value(metrics, "messaging.client.sent.messages", {
        "messaging.destination.name": "tel.metrics",
      }),
    ).toBe(2);
    expect(
      value(metrics, "messaging.client.sent.messages", {
        "messaging.destination.name": "tel.depth",
      }),
    ).toBe(2);
    expect(
      value(metrics, "messaging.client.consumed.messages", {
        "messaging.destination.name": "tel.metrics",
        "rota.task": "tel.ok",
        "error.type": undefined,
      }),
    ).toBe(1);
    expect(
      value(metrics, "messaging.client.consumed.messages", {
        "messaging.destination.name": "tel.metrics",
        "error.type": "TypeError",
      }),
    ).toBe(1);
    expect(
      histogramCount(metrics, "messaging.process.duration", {
        "messaging.destination.name": "tel.metrics",
      }),
    ).toBe(2);
    expect(histogramCount(metrics, "rota.schedule.lateness", {})).toBeGreaterThanOrEqual(1);
    expect(
      value(metrics, "rota.leader.changes", {
        "rota.lease": "tel",
        "rota.leader.change": "acquired",
      }),
    ).toBe(1);
    expect(
      value(metrics, "rota.leader.changes", { "rota.lease": "tel", "rota.leader.change": "lost" }),
    ).toBe(1);
    expect(
      value(metrics, "rota.jobs.rescued", {
        "messaging.destination.name": "tel.rescue",
        "rota.job.state": "available",
      }),
    ).toBe(1);
    expect(
      value(metrics, "rota.queue.jobs", {
        "messaging.destination.name": "tel.depth",
        "rota.job.state": "available",
      }),
    ).toBe(2);

    // Within queueDepthIntervalMs the gauge reports its last read: the jobs
    // table is not scanned at every collection.
    await rota.enqueue("tel.idle", {}, { queue: "tel.depth" });
    const again = await collect();
    expect(
      value(again, "rota.queue.jobs", {
        "messaging.destination.name": "tel.depth",
        "rota.job.state": "available",
      }),
    ).toBe(2);
  });

  it("loaded @opentelemetry/api through the telemetry option", () => {
    const cache = Object.keys(createRequire(import.meta.url).cache);
    expect(cache.some((path) => path.includes("@opentelemetry/api"))).toBe(true);
  });
});

type Metrics = Awaited<ReturnType<MetricReader["collect"]>>["resourceMetrics"];

async function collect(): Promise<Metrics> {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  return resourceMetrics;
}

/** The data points of metric `name` whose attributes match `match` (undefined: absent). */
function points(
  metrics: Metrics,
  name: string,
  match: Record<string, unknown>,
): DataPoint<unknown>[] {
  const metric = metrics.scopeMetrics
    .flatMap((s) => s.metrics)
    .find((m) => m.descriptor.name === name);
  expect(metric, `metric ${name}`).toBeDefined();
  return ((metric?.dataPoints ?? []) as DataPoint<unknown>[]).filter((p) =>
    Object.entries(match).every(([key, v]) => p.attributes[key] === v),
  );
}

function value(metrics: Metrics, name: string, match: Record<string, unknown>): number {
  return points(metrics, name, match).reduce((sum, p) => sum + (p.value as number), 0);
}

function histogramCount(metrics: Metrics, name: string, match: Record<string, unknown>): number {
  return points(metrics, name, match).reduce((sum, p) => sum + (p.value as Histogram).count, 0);
}
