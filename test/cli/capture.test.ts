// `rota capture add|rm|list`, with --json and as text, against a real
// PostgreSQL: the trigger the CLI installs captures a raw-SQL change, and rm
// leaves none behind.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliOn } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
const { cli, json } = cliOn(() => t);
beforeAll(async () => {
  t = await migratedSchema();
  await t.db.pool.query(
    `create table ${pg.escapeIdentifier(t.schema)}.projects (id int primary key, name text, visibility int)`,
  );
});
afterAll(() => t.drop());

describe("rota capture", () => {
  it("add, list and rm, with --json", async () => {
    const table = `${t.schema}.projects`;
    const added = await json(
      "capture",
      "add",
      "projects",
      "--table",
      table,
      "--on",
      "insert, update",
      "--columns",
      "name,visibility",
      "--task",
      "sync",
      "--queue",
      "sync",
    );
    expect(added).toMatchObject({
      name: "projects",
      table,
      columns: ["name", "visibility"],
      on: ["insert", "update"],
      key: ["id"],
      task: "sync",
      queue: "sync",
      status: "ok",
      missing: [],
      queued: 0,
      paused: false,
    });

    await t.db.pool.query(`insert into ${table} values (1, 'one', 0), (2, 'two', 0)`);
    const listed = await json("capture", "list");
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ name: "projects", queued: 2, status: "ok" });

    const text = await cli("capture", "list");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^name\s+table\s+on\s+columns\s+key\s+task\s+queue\s+status/);
    expect(text.stdout).toMatch(/projects\s+\S+\.projects\s+insert,update\s+name,visibility\s+id/);

    expect(await json("capture", "rm", "projects")).toEqual({
      name: "projects",
      dropped_triggers: [
        `${table}.rota_capture_projects_insert`,
        `${table}.rota_capture_projects_update`,
      ],
    });
    expect(await json("capture", "list")).toEqual([]);
  });

  it("refuses bad input with its code, as text and as JSON", async () => {
    const unknown = await cli(
      "capture",
      "add",
      "nope",
      "--table",
      `${t.schema}.missing`,
      "--on",
      "insert",
      "--task",
      "x",
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no table .*\[INVALID_CAPTURE\]/);

    const gone = await cli("capture", "rm", "nope", "--json");
    expect(gone.code).toBe(1);
    expect(JSON.parse(gone.stdout)).toMatchObject({
      ok: false,
      error: { code: "CAPTURE_NOT_FOUND" },
    });

    const noEvents = await cli("capture", "add", "x", "--table", "t", "--task", "x");
    expect(noEvents.code).toBe(2);
    expect(noEvents.stderr).toContain("required option '--on <events>'");
    expect(await json("capture", "list")).toEqual([]);
  });
});
