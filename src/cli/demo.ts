import type { Rota } from "../client.js";
import { defineTask } from "../task.js";
import type { Worker } from "../worker/worker.js";

/**
 * What `rota dev` (and so `npm start`) shows on a fresh machine: a worker
 * running small tasks, a job enqueued every few seconds, one that fails once
 * and is retried, a schedule firing every 10 seconds (materialized ahead
 * by the orchestrator), and one fanned out to five projects, spread over 20
 * seconds after each half minute, each outcome printed as it happens.
 */
export const demoTasks = [
  defineTask<{ n: number }>({
    name: "demo.greet",
    queue: "demo",
    handler: async (payload, ctx) => {
      ctx.logger.debug("greeting", payload);
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
      ctx.logger.debug("scan", { project: ctx.job.targetKey });
    },
  }),
  defineTask<{ report: string }>({
    name: "demo.report",
    queue: "demo",
    handler: async (payload, ctx) => {
      ctx.logger.debug("report", payload);
    },
  }),
];

export const DEMO_SCHEDULE = "demo.every-10s";
/** A schedule fanned out to targets: each project's run at its own offset. */
export const DEMO_FAN_OUT = "demo.scan-projects";

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
    rota.events.on("job:run:success", (e) =>
      log(`demo: ${e.task} #${e.id} succeeded on attempt ${e.attempt}`),
    ),
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
    cron: "*/30 * * * * *",
    window: "20s",
    distribution: "spread",
  });
  await rota.schedules.targets.add(
    DEMO_FAN_OUT,
    Array.from({ length: 5 }, (_, i) => `project-${i + 1}`),
  );
  for (const name of [DEMO_SCHEDULE, DEMO_FAN_OUT]) {
    const schedule = await rota.schedules.get(name);
    if (schedule) names.set(schedule.id, name);
  }
  log(
    `demo: schedule ${DEMO_FAN_OUT} (5 projects every 30 s, spread over 20 s) ${fanned.outcome}; when project-3 runs: rota schedules upcoming ${DEMO_FAN_OUT} --target project-3`,
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
