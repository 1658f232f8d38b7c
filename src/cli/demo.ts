import type { Rota } from "../client.js";
import { defineBatchTask, defineTask } from "../task.js";
import type { Worker } from "../worker/worker.js";

/**
 * What `rota dev` (and so `npm start`) shows on a fresh machine, in the
 * terminal and on the dashboard: a worker running small tasks, a job
 * enqueued every few seconds, one that fails once and is retried, one that
 * fails for good, a schedule firing every 10 seconds (materialized ahead by
 * the orchestrator), one fanned out to 1,000 projects spread over a
 * 10-minute window every quarter hour, a batch task taking its jobs 20 at a
 * time, and a paused queue holding its jobs.
 */
export const demoTasks = [
  defineTask<{ n: number }>({
    name: "demo.greet",
    queue: "demo",
    handler: async (payload, ctx) => {
      ctx.logger.debug({ n: payload.n }, "greeting");
    },
  }),
  defineTask<{ n: number }>({
    name: "demo.flaky",
    queue: "demo",
    maxAttempts: 3,
    backoff: { kind: "fixed", delayMs: 1_000 },
    handler: async (payload, ctx) => {
      if (ctx.attempt === 1)
        throw new Error(`demo.flaky #${payload.n} fails its first attempt on purpose`);
    },
  }),
  defineTask<Record<string, never>>({
    name: "demo.scan",
    queue: "demo",
    handler: async (_payload, ctx) => {
      ctx.logger.debug({ project: ctx.job.targetKey }, "scan");
    },
  }),
  defineTask<{ card: string }>({
    name: "demo.charge",
    queue: "demo",
    maxAttempts: 1,
    handler: async (payload) => {
      throw new Error(`card ${payload.card} declined (the demo's failed job)`);
    },
  }),
  defineBatchTask<{ contact: number }>({
    name: "demo.sync-contacts",
    queue: "demo",
    batch: { size: 20, waitMs: 2_000 },
    batchHandler: async (jobs, ctx) => {
      ctx.logger.debug({ contacts: jobs.length }, "synced");
    },
  }),
  defineTask<{ report: string }>({
    name: "demo.report",
    queue: "demo",
    handler: async (payload, ctx) => {
      ctx.logger.debug({ report: payload.report }, "report");
    },
  }),
];

export const DEMO_SCHEDULE = "demo.every-10s";
/** A schedule fanned out to targets: each project's run at its own offset. */
export const DEMO_FAN_OUT = "demo.scan-projects";
/** A queue the demo pauses: its jobs wait, visible, until it is resumed. */
export const DEMO_PAUSED_QUEUE = "demo.exports";
const DEMO_PROJECTS = 1_000;

export interface Demo {
  worker: Worker;
  stop(): Promise<void>;
}

export async function startDemo(
  rota: Rota,
  log: (line: string) => void,
  everyMs = 3_000,
): Promise<Demo> {
  const offs = [
    rota.events.on("job:run:success", (e) => {
      // A thousand scans a cadence and the batched syncs would drown the rest.
      if (e.task !== "demo.scan" && e.task !== "demo.sync-contacts")
        log(`demo: ${e.task} #${e.id} succeeded on attempt ${e.attempt}`);
    }),
    rota.events.on("job:run:retry", (e) =>
      log(
        `demo: ${e.task} #${e.id} failed attempt ${e.attempt} (${e.error}); retry at ${e.retryAt.toISOString()}`,
      ),
    ),
    rota.events.on("job:failed", (e) =>
      log(`demo: ${e.task} #${e.id} failed for good: ${e.error}`),
    ),
    rota.events.on("schedule:execution:fired", (e) =>
      log(
        `demo: schedule ${names.get(e.scheduleId) ?? e.scheduleId} fired execution #${e.executionId} planned for ${e.runAt.toISOString()} (${e.lateMs} ms late)`,
      ),
    ),
    rota.events.on("schedule:cadence:materialized", (e) =>
      log(
        `demo: schedule ${e.name} planned ${e.executions} run(s) for ${e.occurrenceAt.toISOString()}, ${e.distribution} over ${e.windowMs / 1_000} s; see rota schedules plan ${e.name}`,
      ),
    ),
  ];
  const names = new Map<string, string>();
  const worker = rota.worker({ tasks: demoTasks, queues: ["demo"], concurrency: 4 });
  await worker.start();
  const { outcome } = await rota.schedules.upsert({
    name: DEMO_SCHEDULE,
    task: "demo.report",
    queue: "demo",
    cron: "*/10 * * * * *",
    payload: { report: "demo" },
  });
  log(
    `demo: schedule ${DEMO_SCHEDULE} (every 10 s) ${outcome}; upcoming runs: rota schedules upcoming ${DEMO_SCHEDULE}`,
  );
  const fanned = await rota.schedules.upsert({
    name: DEMO_FAN_OUT,
    task: "demo.scan",
    queue: "demo",
    cron: "*/15 * * * *",
    window: "10m",
    distribution: "spread",
  });
  await rota.schedules.targets.add(
    DEMO_FAN_OUT,
    Array.from({ length: DEMO_PROJECTS }, (_, i) => `project-${i + 1}`),
  );
  for (const name of [DEMO_SCHEDULE, DEMO_FAN_OUT]) {
    const schedule = await rota.schedules.get(name);
    if (schedule) names.set(schedule.id, name);
  }
  log(
    `demo: schedule ${DEMO_FAN_OUT} (${DEMO_PROJECTS} projects every 15 min, spread over 10 min) ${fanned.outcome}; when project-3 runs: rota schedules upcoming ${DEMO_FAN_OUT} --target project-3`,
  );
  const charge = await rota.enqueue(
    "demo.charge",
    { card: "4000 0000 0000 0002" },
    { queue: "demo" },
  );
  log(`demo: enqueued demo.charge #${charge.id}, which fails for good (see it on the dashboard)`);
  await rota.enqueueMany(
    Array.from({ length: 50 }, (_, i) => ({
      task: "demo.sync-contacts",
      payload: { contact: i + 1 },
      options: { queue: "demo" },
    })),
  );
  log("demo: enqueued 50 demo.sync-contacts jobs, handled 20 at a time by one batch handler");
  await rota.queues.pause(DEMO_PAUSED_QUEUE);
  await rota.enqueueMany(
    Array.from({ length: 3 }, (_, i) => ({
      task: "demo.report",
      payload: { report: `export-${i + 1}` },
      options: { queue: DEMO_PAUSED_QUEUE },
    })),
  );
  log(
    `demo: queue ${DEMO_PAUSED_QUEUE} is paused with 3 jobs waiting (resume it on the dashboard)`,
  );
  let n = 0;
  const enqueueNext = async () => {
    n++;
    const task = n % 4 === 0 ? "demo.flaky" : "demo.greet";
    const { id } = await rota.enqueue(task, { n }, { queue: "demo" });
    log(`demo: enqueued ${task} #${id}`);
  };
  await enqueueNext();
  const timer = setInterval(
    () => void enqueueNext().catch((e: Error) => log(`demo: enqueue failed: ${e.message}`)),
    everyMs,
  );
  return {
    worker,
    stop: async () => {
      clearInterval(timer);
      await worker.stop();
      for (const off of offs) off();
    },
  };
}
