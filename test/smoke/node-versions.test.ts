// One worker end to end, small enough to run under every supported Node
// (scripts/other-node-versions.sh runs it, with the database-free unit tests,
// under Node 22 and 24; the full suite runs under the machine's Node): a job
// enqueued and run, and a schedule that fires once when the database clock
// reaches its occurrence.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe(`smoke on Node ${process.version}`, () => {
  it("a worker runs an enqueued job, and a schedule fires once via the clock seam", async () => {
    const ran: { task: string; payload: unknown; occurrenceAt: Date | null }[] = [];
    const worker = t.rota.worker({
      logger: silentLogger,
      rescueIntervalMs: 0,
      tasks: {
        greet: async (payload, ctx) => {
          ran.push({ task: "greet", payload, occurrenceAt: ctx.job.occurrenceAt });
        },
        tick: async (payload, ctx) => {
          ran.push({ task: "tick", payload, occurrenceAt: ctx.job.occurrenceAt });
        },
      },
    });
    const orchestrator = t.rota.orchestrator({ holder: "smoke", leaseTtlMs: 3_600_000 });
    await worker.start();
    try {
      const greeted = nextEvent(t.rota.events, "job:run:success", (e) => e.task === "greet");
      const { id } = await t.rota.enqueue("greet", { to: "node" });
      expect((await greeted).id).toBe(id);

      await t.rota.schedules.upsert({
        name: "smoke.hourly",
        task: "tick",
        cron: "0 * * * *",
        payload: { n: 1 },
      });
      await orchestrator.tick();
      const [next] = await t.rota.schedules.upcoming("smoke.hourly", { limit: 1 });
      if (!next) throw new Error("the schedule has a next run");
      const now = await t.rota.clock.now();
      const ticked = nextEvent(t.rota.events, "job:run:success", (e) => e.task === "tick");
      await t.rota.clock.shift(next.runAt.getTime() - now.getTime() + 1_000);
      await orchestrator.tick();
      await ticked;
      await orchestrator.tick();
      expect(ran).toEqual([
        { task: "greet", payload: { to: "node" }, occurrenceAt: null },
        { task: "tick", payload: { n: 1 }, occurrenceAt: next.runAt },
      ]);
      const history = await t.rota.schedules.history("smoke.hourly");
      expect(history.filter((h) => h.state === "succeeded")).toHaveLength(1);
    } finally {
      await worker.stop();
      await orchestrator.stop();
    }
  });
});
