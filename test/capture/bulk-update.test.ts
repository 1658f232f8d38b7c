// A bulk UPDATE of 10,000 rows of a captured table writes its 10,000 jobs in
// the UPDATE's own transaction, with one INSERT … SELECT from the statement
// trigger's transition tables. The time capture adds to the UPDATE is
// measured against the same UPDATE of an identical table with no capture,
// and printed: a measurement to report, not an assertion (the machine's load
// decides the numbers).
//
//   DATABASE_URL=postgres://… npx vitest run test/capture/bulk-update.test.ts
//   (CAPTURE_BULK_ROWS=100000 measures another size)
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migratedSchemaWithClient, type TestSchemaWithClient } from "../helpers/database.js";

const ROWS = Number(process.env.CAPTURE_BULK_ROWS ?? 10_000);
const REPETITIONS = 7;

/** t.app: a plain pg client, the "other application" that writes the tables behind rota's back. */
let t: TestSchemaWithClient;
beforeAll(async () => {
  t = await migratedSchemaWithClient();
});
afterAll(() => t.drop());

async function createFilledTable(name: string): Promise<string> {
  const table = `${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(name)}`;
  await t.app.query(
    `create table ${table} (id bigint primary key, name text not null, description text, visibility int not null)`,
  );
  await t.app.query(
    `insert into ${table} select g, 'project ' || g, 'a description', 0 from generate_series(1, $1::int) g`,
    [ROWS],
  );
  await t.app.query(`vacuum analyze ${table}`);
  return table;
}

/** Milliseconds the UPDATE of every row takes, in a transaction rolled back after (so each run starts alike). */
async function timedUpdate(table: string): Promise<{ ms: number; jobs: number }> {
  await t.app.query("begin");
  try {
    const started = performance.now();
    await t.app.query(`update ${table} set name = name || '+', visibility = visibility + 1`);
    const ms = performance.now() - started;
    const jobs = await t.app.query<{ n: number }>(
      `select count(*)::int as n from ${pg.escapeIdentifier(t.schema)}.jobs where queue = 'bulk'`,
    );
    return { ms, jobs: jobs.rows[0]?.n ?? -1 };
  } finally {
    await t.app.query("rollback");
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

describe(`a bulk UPDATE of ${ROWS.toLocaleString("en-US")} rows`, () => {
  it(
    "captures every row in the UPDATE's transaction; the time it adds is reported",
    async () => {
      const plain = await createFilledTable("bulk_plain");
      const captured = await createFilledTable("bulk_captured");
      await t.rota.capture.add({
        name: "bulk",
        table: `${t.schema}.bulk_captured`,
        columns: ["name", "visibility"],
        on: ["update"],
        task: "sync",
        queue: "bulk",
      });

      // One warm-up of each (caches, plans), then alternating runs.
      await timedUpdate(plain);
      await timedUpdate(captured);
      const plainMs: number[] = [];
      const capturedMs: number[] = [];
      for (let i = 0; i < REPETITIONS; i++) {
        const without = await timedUpdate(plain);
        expect(without.jobs).toBe(0);
        plainMs.push(without.ms);
        const withCapture = await timedUpdate(captured);
        // Inside the UPDATE's transaction, before it ends: every row has its job.
        expect(withCapture.jobs).toBe(ROWS);
        capturedMs.push(withCapture.ms);
      }
      const base = median(plainMs);
      const total = median(capturedMs);
      const round = (ms: number) => ms.toFixed(1);
      process.stdout.write(
        [
          `capture overhead, UPDATE of ${ROWS} rows, ${REPETITIONS} runs each (medians):`,
          `  no capture:   ${round(base)} ms   [${plainMs.map(round).join(", ")}]`,
          `  with capture: ${round(total)} ms   [${capturedMs.map(round).join(", ")}]`,
          `  added: ${round(total - base)} ms (${(((total - base) / ROWS) * 1000).toFixed(1)} µs a row, ×${(total / base).toFixed(1)})`,
          "",
        ].join("\n"),
      );

      // Committed: the 10,000 jobs are there, one per row, for the workers.
      await t.app.query(`update ${captured} set visibility = visibility + 1`);
      const [info] = await t.rota.capture.list();
      expect(info).toMatchObject({ name: "bulk", queued: ROWS, status: "ok" });
      // The same UPDATE again before a worker runs: still one job per row.
      await t.app.query(`update ${captured} set visibility = visibility + 1`);
      expect((await t.rota.capture.list())[0]?.queued).toBe(ROWS);
    },
    Math.max(60_000, ROWS * 3),
  );
});
