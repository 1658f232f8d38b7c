// What a schedule reports says what it holds: the next planned run, the last
// run that started, and the planning cursor apart from both (API and CLI).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { nextEvent } from "../helpers/events.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const DAY = 24 * 3_600_000;

describe("a schedule's times", () => {
  it("next planned run, last run and cursor are three different things", async () => {
    const { schedule } = await t.rota.schedules.upsert({
      name: "daily",
      task: "daily.task",
      cron: "0 9 * * *",
      queue: "fields",
    });
    const planned = await t.rota.schedules.upcoming("daily", { limit: 4 });
    // Three planned executions (the horizon), the first of them next.
    expect(schedule.nextPlannedAt).toEqual(planned[0]?.runAt);
    expect(schedule.lastPlannedAt).toEqual(planned[2]?.runAt);
    // The cursor is the first occurrence not planned yet: the fourth.
    expect(schedule.cursorAt).toEqual(planned[3]?.runAt);
    expect(planned[3]?.state).toBe("computed");
    expect(schedule.lastRunAt).toBeNull();

    // The first one comes due and a worker runs it: the last run is its start.
    const first = planned[0]?.runAt as Date;
    const now = await t.rota.clock.now();
    await t.rota.clock.shift(first.getTime() - now.getTime() + 1_000);
    const worker = t.rota.worker({
      queues: ["fields"],
      tasks: { "daily.task": async () => {} },
      logger: silentLogger,
    });
    const ran = nextEvent(t.rota.events, "job:run:success", (e) => e.task === "daily.task");
    await worker.start();
    await ran;
    await worker.stop();
    const after = await t.rota.schedules.get("daily");
    const history = await t.rota.schedules.history("daily", { states: ["succeeded"] });
    expect(history).toHaveLength(1);
    expect(after?.lastRunAt).toEqual(history[0]?.startedAt);
    expect(after?.lastRunAt?.getTime()).toBeGreaterThanOrEqual(first.getTime());
    // The next planned run is the second occurrence now.
    expect(after?.nextPlannedAt).toEqual(planned[1]?.runAt);
    expect((after?.nextPlannedAt?.getTime() ?? 0) - first.getTime()).toBe(DAY);
    await t.rota.clock.reset();
  });

  it("the CLI prints the next run, and names the columns of its tables as in its JSON", async () => {
    const cli = (...args: string[]) =>
      runCli([...args, "--schema", t.schema, "--database-url", t.url]);
    const added = await cli("schedules", "add", "z", "--task", "t", "--cron", "0 9 * * *");
    expect(added.code, added.stderr).toBe(0);
    const [next] = await t.rota.schedules.upcoming("z", { limit: 1 });
    expect(added.stdout).toContain(`next run at ${next?.runAt.toISOString()}`);

    const json = JSON.parse((await cli("schedules", "list", "--json")).stdout) as Record<
      string,
      unknown
    >[];
    const z = json.find((s) => s.name === "z") as Record<string, unknown>;
    expect(z.next_planned_at).toBe(next?.runAt.toISOString());
    expect(Object.keys(z)).toEqual(
      expect.arrayContaining(["next_planned_at", "last_run_at", "cursor_at", "last_planned_at"]),
    );
    const text = (await cli("schedules", "list")).stdout;
    expect(text.split("\n")[0]).toMatch(/next_planned_at\s+last_run_at\s+last_error/);
    const got = (await cli("schedules", "get", "z")).stdout;
    expect(got).toMatch(/^next_planned_at\s/m);
    expect(got).not.toMatch(/nextPlannedAt/);
  });
});
