import pg from "pg";
import { describe, expect, it } from "vitest";
import { storableJson, unstorableEscape } from "../../src/db/jsonb.js";
import {
  isConcurrencyRace,
  isConnectionLoss,
  isDataException,
  isIntegrityViolation,
  isRaisedException,
  isRefusal,
  isStatementError,
  isUniqueViolation,
  sqlstate,
} from "../../src/db/sqlstate.js";
import { RotaError } from "../../src/errors.js";
import { withClient } from "../helpers/database.js";

/** The error PostgreSQL reports for `sql`, run in a rolled-back transaction. */
function refusedBy(sql: string): Promise<unknown> {
  return withClient(async (client) => {
    await client.query("begin");
    try {
      await client.query(sql);
      throw new Error(`expected ${sql} to fail`);
    } catch (error) {
      return error;
    } finally {
      await client.query("rollback");
    }
  });
}

describe("SQLSTATE classes", () => {
  it("names the class of each error the server reports", async () => {
    const data = await refusedBy("select 1 / 0");
    const unique = await refusedBy(`
      create temp table t (k int, constraint jobs_running_concurrency unique (k));
      insert into t values (1), (1)`);
    const check = await refusedBy(
      "create temp table c (n int check (n > 0)); insert into c values (0)",
    );
    const raised = await refusedBy("do $$ begin raise exception 'no'; end $$");
    const syntax = await refusedBy("selec 1");

    expect([data, unique, check, raised, syntax].map(sqlstate)).toEqual([
      "22012",
      "23505",
      "23514",
      "P0001",
      "42601",
    ]);
    expect(isDataException(data)).toBe(true);
    expect(isIntegrityViolation(unique) && isIntegrityViolation(check)).toBe(true);
    expect(isRaisedException(raised)).toBe(true);
    // What trying again cannot cure: data, constraints, raised; not a syntax error.
    expect([data, unique, check, raised, syntax].map(isRefusal)).toEqual([
      true,
      true,
      true,
      true,
      false,
    ]);
    expect(isUniqueViolation(unique)).toBe(true);
    expect(isUniqueViolation(unique, "jobs_running_concurrency")).toBe(true);
    expect(isUniqueViolation(unique, "other")).toBe(false);
    expect(isConcurrencyRace(unique)).toBe(true);
    expect(isConcurrencyRace(check)).toBe(false);
    expect(isStatementError(syntax)).toBe(true);
  });

  it("is false for what the server did not report for a statement", async () => {
    const lost = await new pg.Client({ connectionString: "postgres://root@127.0.0.1:1/x" })
      .connect()
      .catch((e: unknown) => e);
    const notServer = [lost, new RotaError("INVALID_OPTION", "no"), { code: "40P01" }, null];
    for (const error of notServer) {
      expect(sqlstate(error)).toBeUndefined();
      expect(isStatementError(error)).toBe(false);
      expect(isRefusal(error)).toBe(false);
      expect(isConcurrencyRace(error)).toBe(false);
    }
  });

  it("tells a lost connection from a statement the server refused", async () => {
    const refusedConnect = await new pg.Client({
      connectionString: "postgres://root@127.0.0.1:1/x",
    })
      .connect()
      .catch((e: unknown) => e);
    // What pg_terminate_backend does to a backend, seen from its client.
    const terminated = await withClient(async (victim) => {
      victim.on("error", () => {});
      const pid = (await victim.query("select pg_backend_pid() as pid")).rows[0].pid;
      await withClient((killer) => killer.query("select pg_terminate_backend($1)", [pid]));
      return victim.query("select 1").catch((e: unknown) => e);
    }).catch((e: unknown) => e);
    const lost = [
      refusedConnect,
      terminated,
      new RotaError("DATABASE_UNREACHABLE", "gone"),
      new RotaError("QUERY_TIMEOUT", "silent"),
      new Error("Connection terminated unexpectedly"),
    ];
    for (const error of lost) expect(isConnectionLoss(error)).toBe(true);
    const answered = [
      await refusedBy("select 1 / 0"),
      await refusedBy("selec 1"),
      new RotaError("INVALID_OPTION", "no"),
    ];
    for (const error of answered) expect(isConnectionLoss(error)).toBe(false);
  });
});

describe("text jsonb cannot store", () => {
  it("storableJson mends NUL and unpaired surrogates in strings, and jsonb takes the result", async () => {
    const value = { message: "a\u0000b", half: "x\ud83d y", low: "\ude00", pair: "\ud83d\ude00" };
    const text = storableJson(value);
    expect(JSON.parse(text)).toEqual({
      message: "a\ufffdb",
      half: "x\ufffd y",
      low: "\ufffd",
      pair: "\ud83d\ude00",
    });
    expect(unstorableEscape(text)).toBeNull();
    const stored = await withClient((c) => c.query("select $1::jsonb as v", [text]));
    expect(stored.rows[0].v.pair).toBe("\ud83d\ude00");
  });

  it("unstorableEscape names what JSON.stringify escaped and jsonb refuses", async () => {
    expect(unstorableEscape(JSON.stringify({ a: "x\u0000" }))).toBe("a NUL character (\\u0000)");
    expect(unstorableEscape(JSON.stringify(["\udc01"]))).toBe(
      "an unpaired UTF-16 surrogate (\\udc01)",
    );
    // The six characters \u0000 typed, and an even run of backslashes before them.
    expect(unstorableEscape(JSON.stringify({ typed: "\\u0000", two: "\\\\u0000" }))).toBeNull();
    expect(unstorableEscape(JSON.stringify({ plain: "no escapes" }))).toBeNull();
    const refused = await refusedBy(`select '${JSON.stringify({ a: "x\u0000" })}'::jsonb`);
    expect(isDataException(refused)).toBe(true);
  });
});
