import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

let t: TestSchema;
const cli = (...args: string[]) => runCli([...args, "--schema", t.schema, "--database-url", t.url]);
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("rota jobs", () => {
  it("list --json prints the jobs, filtered", async () => {
    const a = await t.rota.enqueue("cli.a", { n: 1 }, { queue: "q1" });
    await t.rota.enqueue("cli.b", { n: 2 }, { queue: "q2" });
    const result = await cli("jobs", "list", "--queue", "q1", "--json");
    expect(result.code).toBe(0);
    const page = JSON.parse(result.stdout);
    expect(page.next).toBeNull();
    expect(page.jobs).toHaveLength(1);
    expect(page.jobs[0]).toMatchObject({
      id: a.id,
      queue: "q1",
      task: "cli.a",
      state: "available",
    });
    const text = await cli("jobs", "list");
    expect(text.stdout).toContain("cli.b");
  });

  it("list pages by --before, and finds jobs by payload", async () => {
    const ids: string[] = [];
    for (let n = 0; n < 3; n++)
      ids.push((await t.rota.enqueue("cli.page", { tenant: 40 + n }, { queue: "paged" })).id);
    const first = JSON.parse(
      (await cli("jobs", "list", "--queue", "paged", "--limit", "2", "--json")).stdout,
    );
    expect(first.jobs.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    expect(first.next).toBe(ids[1]);
    const text = await cli("jobs", "list", "--queue", "paged", "--limit", "2");
    expect(text.stderr).toContain(`more: --before ${ids[1]}`);
    const second = JSON.parse(
      (await cli("jobs", "list", "--queue", "paged", "--before", first.next, "--json")).stdout,
    );
    expect(second).toMatchObject({ jobs: [{ id: ids[0] }], next: null });
    const found = JSON.parse(
      (await cli("jobs", "list", "--payload", '{"tenant": 41}', "--json")).stdout,
    );
    expect(found.jobs.map((j: { id: string }) => j.id)).toEqual([ids[1]]);
    const bad = await cli("jobs", "list", "--payload", "{tenant: 41}");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("INVALID_OPTION");
    expect(bad.stderr).toContain("--payload must be JSON");
  });

  it("retry puts one failed job back, and refuses one that is not failed or cancelled", async () => {
    const { id } = await t.rota.enqueue("cli.r", {}, { queue: "q5" });
    const refused = await cli("jobs", "retry", id);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("JOB_NOT_RETRYABLE");
    await withClient((c) =>
      c.query(`update "${t.schema}".jobs set state = 'failed', finished_at = now() where id = $1`, [
        id,
      ]),
    );
    const retried = await cli("jobs", "retry", id, "--json");
    expect(JSON.parse(retried.stdout)).toEqual({ id, previousState: "failed" });
    expect((await t.rota.getJob(id))?.state).toBe("available");
  });

  it("cancel and get", async () => {
    const { id } = await t.rota.enqueue("cli.c", {}, { queue: "q3" });
    const cancelled = await cli("jobs", "cancel", id, "--json");
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ id, state: "cancelled" });
    const got = await cli("jobs", "get", id, "--json");
    expect(JSON.parse(got.stdout)).toMatchObject({ id, state: "cancelled" });
    const missing = await cli("jobs", "get", "987654321");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("JOB_NOT_FOUND");
  });

  it("replay puts failed jobs of a queue back", async () => {
    const { id } = await t.rota.enqueue("cli.d", {}, { queue: "q4" });
    await withClient((c) =>
      c.query(
        `update "${t.schema}".jobs set state = 'failed', attempts = 3, finished_at = now() where id = $1`,
        [id],
      ),
    );
    const result = await cli("jobs", "replay", "--queue", "q4", "--json");
    expect(JSON.parse(result.stdout)).toEqual({ replayed: 1, ids: [id] });
    expect(await t.rota.getJob(id)).toMatchObject({ state: "available", attempts: 0 });
    const bad = await cli("jobs", "replay", "--from", "yesterday");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("INVALID_OPTION");
  });

  it("prune deletes finished jobs past the retention given, and says how many", async () => {
    const { id } = await t.rota.enqueue("cli.old", {}, { queue: "q6" });
    const kept = await t.rota.enqueue("cli.new", {}, { queue: "q6" });
    await withClient((c) =>
      c.query(
        `update "${t.schema}".jobs set state = 'failed', finished_at = now() - interval '2 hours' where id = $1;`,
        [id],
      ),
    );
    await withClient((c) =>
      c.query(`update "${t.schema}".jobs set state = 'failed', finished_at = now() where id = $1`, [
        kept.id,
      ]),
    );
    const result = await cli("jobs", "prune", "--failed-ms", "3600000", "--json");
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).deleted).toBeGreaterThanOrEqual(1);
    expect(result.stderr).toMatch(/jobs prune: \d+/);
    expect(await t.rota.getJob(id)).toBeNull();
    expect((await t.rota.getJob(kept.id))?.state).toBe("failed");
    const bad = await cli("jobs", "prune", "--failed-ms", "a while");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("INVALID_OPTION");
  });
});
