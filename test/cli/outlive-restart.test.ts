// `rota worker` and `rota orchestrator` live through a restart of their
// database. They used to exit (code 13, an unsettled top-level await) the
// moment it stopped: every timer of a worker and an orchestrator is unref'd,
// so once the server closed their connections nothing held the event loop.
// Found by the chaos run (npm run chaos). On a PostgreSQL of this test's own:
// it is restarted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { collect, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { OwnServer } from "../helpers/own-server.js";
import { SIDE_TASKS } from "../helpers/side-table.js";

let server: OwnServer;
beforeAll(async () => {
  server = await OwnServer.start("outlive-restart");
});
afterAll(async () => {
  await server?.stop();
});

describe("rota's processes and a database restart", () => {
  it("a worker and an orchestrator, idle, outlive the restart and then stop cleanly", {
    timeout: 120_000,
  }, async () => {
    const schema = "outlive_restart";
    const setup = new Rota({ connection: server.url, schema });
    try {
      // The data folder is kept between runs: start from an empty schema.
      const { pool } = databaseOf(setup);
      await pool.query(`drop schema if exists ${schema} cascade`);
      await setup.migrate();
      await pool.query(`create table ${schema}.side_runs (
        job_id bigint not null, attempt int not null, pid int not null, note text not null,
        at timestamptz not null default clock_timestamp())`);
    } finally {
      await setup.close();
    }
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: server.url, ROTA_TEST_SCHEMA: schema };
    const children = [
      startCli(["worker", "--schema", schema, "--tasks", SIDE_TASKS], { env }),
      startCli(["orchestrator", "--schema", schema], { env }),
    ];
    const exits = children.map(collect);
    try {
      await Promise.all(children.map((child) => waitForOutput(child, "running")));

      await server.stop();
      // Down for a while: long enough for every connection to be gone and
      // every reconnect to fail at least once.
      await new Promise((r) => setTimeout(r, 2_000));
      for (const child of children)
        expect(child.exitCode, "exited while the database was down").toBeNull();
      await server.start();
      await new Promise((r) => setTimeout(r, 2_000));
      for (const child of children) expect(child.exitCode, "exited after the restart").toBeNull();
      // And the worker works: a job enqueued now runs.
      const rota = new Rota({ connection: server.url, schema });
      try {
        await rota.enqueue("record", {});
        const ran = async () =>
          (await databaseOf(rota).pool.query(`select count(*)::int as n from ${schema}.side_runs`))
            .rows[0]?.n;
        await expect.poll(ran, { timeout: 30_000, interval: 200 }).toBe(1);
      } finally {
        await rota.close();
      }
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    }
    const ends = await Promise.all(exits);
    for (const end of ends) expect(end.code, end.stderr).toBe(0);
  });
});
