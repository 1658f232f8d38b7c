// A pino logger given to createRota receives the worker's and the
// orchestrator's lines with their structured fields (jobId, queue, task,
// attempt, workerId; holder, epoch, scheduleId), the handler's ctx.logger
// lines with the job's fields, and never a payload.
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { defineTask } from "../../src/task.js";
import { dropSchema, migratedSchema, type TestSchema } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

const SECRET = "s3cret-payload-value";

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

let t: TestSchema;
let rota: Rota;
const written: string[] = [];
const lines = (): Line[] =>
  written
    .join("")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);

beforeAll(async () => {
  // The schema comes from the helper; this file's Rota is its own, with pino.
  t = await migratedSchema();
  const stream = new Writable({
    write(chunk, _encoding, done) {
      written.push(String(chunk));
      done();
    },
  });
  rota = new Rota({
    connection: t.url,
    schema: t.schema,
    logger: pino({ level: "debug" }, stream),
  });
});
afterAll(async () => {
  await rota.close();
  await t.rota.close();
  await dropSchema(t.url, t.schema);
});

describe("logging through pino", () => {
  it("the worker logs with job and worker fields, and the handler's ctx.logger with the job's", async () => {
    const greet = defineTask<{ secret: string }>({
      name: "log.greet",
      queue: "logs",
      handler: async (_payload, ctx) => {
        ctx.logger.info({ step: "greeting" }, "handler says hello");
      },
    });
    const boom = defineTask<{ secret: string }>({
      name: "log.boom",
      queue: "logs",
      maxAttempts: 2,
      backoff: { kind: "fixed", delayMs: 0 },
      handler: async () => {
        throw new Error("it broke");
      },
    });
    const worker = rota.worker({ tasks: [greet, boom], workerId: "w-log", rescueIntervalMs: 0 });
    await worker.start();
    // Listened for before the enqueues: a job may finish before its enqueue is answered.
    const failed = nextEvent(rota.events, "job:failed", (e) => e.task === "log.boom");
    const succeeded = nextEvent(rota.events, "job:run:success", (e) => e.task === "log.greet");
    const ok = await rota.enqueue(greet, { secret: SECRET });
    const bad = await rota.enqueue(boom, { secret: SECRET });
    await Promise.all([failed, succeeded]);
    await worker.stop();

    const all = lines();
    const started = all.find((l) => l.msg === "worker started");
    expect(started).toMatchObject({ workerId: "w-log", queues: ["logs"], concurrency: 10 });

    const hello = all.find((l) => l.msg === "handler says hello");
    expect(hello).toMatchObject({
      workerId: "w-log",
      jobId: ok.id,
      queue: "logs",
      task: "log.greet",
      attempt: 1,
      step: "greeting",
    });

    const retried = all.find((l) => l.msg === "job attempt failed; it is retried");
    expect(retried).toMatchObject({
      level: 40,
      workerId: "w-log",
      jobId: bad.id,
      queue: "logs",
      task: "log.boom",
      attempt: 1,
      error: "it broke",
    });
    const gaveUp = all.find((l) => l.msg === "job failed: no attempts left");
    expect(gaveUp).toMatchObject({ level: 50, workerId: "w-log", jobId: bad.id, attempt: 2 });
    expect(all.find((l) => l.msg === "worker stopped")).toMatchObject({ workerId: "w-log" });
    expect(written.join("")).not.toContain(SECRET);
  });

  it("the orchestrator logs leadership with its epoch, rescues with the job, schedules with their id", async () => {
    const orchestrator = rota.orchestrator({ holder: "o-log", leaseTtlMs: 3_600_000 });
    // A job whose worker vanished: running, its lease expired (behind rota's back).
    const lost = await rota.enqueue("log.vanished", { secret: SECRET }, { queue: "logs" });
    const db = databaseOf(rota);
    await db.pool.query(
      `update "${t.schema}".jobs set state = 'running', attempts = 1, lease_holder = 'gone',
         started_at = now() - interval '1 hour', lease_expires_at = now() - interval '1 minute'
       where id = $1`,
      [lost.id],
    );
    // A schedule whose spec was broken by hand: the orchestrator disables it.
    await rota.schedules.upsert({
      name: "log.broken",
      task: "log.greet",
      payload: { secret: SECRET },
      cron: "* * * * *",
      horizon: 1,
    });
    await db.pool.query(
      `update "${t.schema}".schedules set cron = 'every tuesday' where name = 'log.broken'`,
    );
    await rota.clock.shift(60_000);

    const report = await orchestrator.tick();
    expect(report.leader).toBe(true);
    await orchestrator.stop();

    const all = lines();
    const led = all.find((l) => l.msg === "became the leader");
    expect(led).toMatchObject({ holder: "o-log", epoch: report.epoch, lease: "orchestrator" });
    const rescued = all.find((l) => l.msg.startsWith("rescued a job") && l.holder === "o-log");
    expect(rescued).toMatchObject({
      jobId: lost.id,
      queue: "logs",
      task: "log.vanished",
      attempt: 1,
      epoch: report.epoch,
    });
    const schedule = await rota.schedules.get("log.broken");
    const quiesced = all.find((l) => l.msg === "schedule disabled: its spec does not parse");
    expect(quiesced).toMatchObject({
      holder: "o-log",
      scheduleId: schedule?.id,
      schedule: "log.broken",
      epoch: report.epoch,
    });
    expect(all.find((l) => l.msg === "orchestrator stopped")).toMatchObject({ holder: "o-log" });
    expect(written.join("")).not.toContain(SECRET);
  });
});
