import { describe, expect, it } from "vitest";
import { Rota } from "../src/client.js";
import { redactUrl, validateDatabaseUrl, validateSchemaName } from "../src/config.js";
import { RotaError } from "../src/errors.js";

describe("validateSchemaName", () => {
  it.each(["rota", "rota_2", "_x", "a".repeat(50)])("accepts %s", (name) => {
    expect(validateSchemaName(name)).toBe(name);
  });
  it.each(["", "Rota", "1rota", "ro-ta", 'x"; drop schema rota; --', "a".repeat(51), "pg_rota", 5])(
    "refuses %s with INVALID_SCHEMA_NAME",
    (name) => {
      const error = (() => {
        try {
          validateSchemaName(name);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(RotaError);
      expect((error as RotaError).code).toBe("INVALID_SCHEMA_NAME");
    },
  );
});

describe("validateDatabaseUrl", () => {
  it("accepts postgres:// and postgresql:// URLs", () => {
    expect(validateDatabaseUrl("postgres://u@h:5432/d")).toBe("postgres://u@h:5432/d");
    expect(validateDatabaseUrl("postgresql://h/d")).toBe("postgresql://h/d");
  });
  it.each(["", "localhost:5432", "http://x/y", "postgres://h:port/d"])("refuses %j", (url) => {
    expect(() => validateDatabaseUrl(url)).toThrow(
      expect.objectContaining({ code: "INVALID_DATABASE_URL" }),
    );
  });
  it("never prints the password", () => {
    expect(redactUrl("postgres://u:hunter2@h/d")).toBe("postgres://u:***@h/d");
    try {
      validateDatabaseUrl("mysql://u:hunter2@h/d");
    } catch (e) {
      expect((e as Error).message).not.toContain("hunter2");
    }
  });
});

describe("the connection option", () => {
  // What a JavaScript caller gets from `connection: process.env.DATABASE_URL`
  // with the variable unset, or from passing the wrong thing: a typed error
  // when rota is set up, nothing connected.
  it.each([
    [undefined, "nothing"],
    [null, "nothing"],
    [5432, "a number"],
    [{ host: "localhost" }, "an object"],
  ])("refuses %j with INVALID_OPTION", (connection, got) => {
    expect(() => new Rota({ connection: connection as unknown as string })).toThrow(
      expect.objectContaining({
        code: "INVALID_OPTION",
        details: { field: "connection", got },
        message: expect.stringContaining("process.env.DATABASE_URL"),
      }),
    );
  });
});
