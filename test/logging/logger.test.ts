// rota's own loggers: streamLogger's text and JSON lines and its least level;
// childLogger using a logger's child() when it has one, else merging fields;
// and the `logger` option refused with the field named when it is not one.
import { describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { isRotaError } from "../../src/errors.js";
import { childLogger, type LogFields, type Logger, streamLogger } from "../../src/logger.js";

function captured(options: Parameters<typeof streamLogger>[0] = {}) {
  const lines: string[] = [];
  const logger = streamLogger({ ...options, write: (line) => lines.push(line) });
  return { logger, lines };
}

describe("streamLogger", () => {
  it("writes text lines from info up by default, fields as JSON after the message", () => {
    const { logger, lines } = captured();
    logger.debug({ jobId: "1" }, "not written");
    logger.info({ jobId: "1", queue: "q" }, "job failed");
    logger.warn({}, "no fields");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\S+Z info job failed \{"jobId":"1","queue":"q"\}\n$/);
    expect(lines[1]).toMatch(/^\S+Z warn no fields\n$/);
  });

  it("writes JSON lines as pino does, from the level asked for", () => {
    const { logger, lines } = captured({ format: "json", level: "debug" });
    logger.debug({ epoch: 3 }, "became the leader");
    const line = JSON.parse(lines[0] as string);
    expect(line).toMatchObject({ level: "debug", msg: "became the leader", epoch: 3 });
    expect(typeof line.time).toBe("string");
  });

  it("takes pino's (message) form from code that is not type-checked", () => {
    const { logger, lines } = captured({ format: "json" });
    (logger.info as unknown as (message: string) => void)("just a message");
    expect(JSON.parse(lines[0] as string)).toMatchObject({ level: "info", msg: "just a message" });
  });
});

describe("childLogger", () => {
  it("uses the logger's own child() when it has one", () => {
    const bound: LogFields[] = [];
    const child = streamLogger({ write: () => {} });
    const parent: Logger = {
      ...streamLogger({ write: () => {} }),
      child: (fields) => {
        bound.push(fields);
        return child;
      },
    };
    expect(childLogger(parent, { workerId: "w" })).toBe(child);
    expect(bound).toEqual([{ workerId: "w" }]);
  });

  it("wraps a logger without child(), merging the fields into each line, nested too", () => {
    const seen: [LogFields, string | undefined][] = [];
    const plain: Logger = {
      debug: () => {},
      info: (fields, message) => seen.push([fields, message]),
      warn: () => {},
      error: () => {},
    };
    const worker = childLogger(plain, { workerId: "w" });
    const job = childLogger(worker, { jobId: "7" });
    job.info({ step: 1 }, "hello");
    job.info({ workerId: "override" }, "later fields win");
    expect(seen).toEqual([
      [{ workerId: "w", jobId: "7", step: 1 }, "hello"],
      [{ workerId: "override", jobId: "7" }, "later fields win"],
    ]);
  });
});

describe("the logger option", () => {
  it("is refused, naming the field, when it is not a logger", () => {
    try {
      new Rota({
        connection: "postgres://localhost/x",
        logger: { info() {} } as unknown as Logger,
      });
      expect.unreachable();
    } catch (error) {
      expect(isRotaError(error) && error.code).toBe("INVALID_OPTION");
      expect((error as Error).message).toMatch(
        /^logger must be a logger with debug, info, warn and error/,
      );
    }
  });
});
