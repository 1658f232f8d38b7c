// Hostile input, generated: names with quotes, semicolons, unicode and SQL
// fragments, payloads deep, huge, with NUL bytes or lone surrogates, options
// of the wrong type. Each call either stores exactly what it was given or
// throws a RotaError with a code, and writes nothing; no value reaches the
// database as SQL text (a canary table outlives every injection attempt,
// and the server never sees a syntax error from one).
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRotaError } from "../../src/errors.js";
import { cliOn } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
let s: string;
beforeAll(async () => {
  t = await migratedSchema();
  s = pg.escapeIdentifier(t.schema);
  await t.db.pool.query(`create table ${s}.canary (id int primary key)`);
  await t.db.pool.query(`insert into ${s}.canary values (1)`);
});
afterAll(() => t.drop());

const RUNS = 150;
const { cli } = cliOn(() => t);

/** Strings an attacker, or an unlucky user, would send. */
const hostileText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom(
    "",
    " ",
    "a'b",
    'a"b',
    "x; drop table canary; --",
    "'); delete from jobs; --",
    "$1",
    "$$ || pg_sleep(10) || $$",
    "\\",
    "\u0000",
    "name\u0000null",
    "\ud800",
    "ünïcødé",
    "😀",
    "a".repeat(129),
    "a".repeat(10_000),
    "{{schema}}",
    "%s%n",
    "../../etc/passwd",
    "a b",
    "-",
    ".",
  ),
);

/** Rows in a table of the test's schema. */
async function count(table: string): Promise<number> {
  const result = await t.db.pool.query(`select count(*)::int as n from ${s}.${table}`);
  return result.rows[0].n as number;
}

/**
 * Runs `call`: it must resolve, or reject with a RotaError whose code is
 * one of `codes` having written nothing to `table`.
 */
async function storedOrRefused<T>(
  table: string,
  codes: readonly string[],
  call: () => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; code: string }> {
  const before = await count(table);
  try {
    return { ok: true, value: await call() };
  } catch (error) {
    if (!isRotaError(error)) throw error;
    expect(codes).toContain(error.code);
    expect(await count(table)).toBe(before);
    return { ok: false, code: error.code };
  }
}

describe("hostile input", () => {
  it("task and queue names: stored exactly as given, or refused with their code and nothing written", async () => {
    await fc.assert(
      fc.asyncProperty(hostileText, hostileText, async (task, queue) => {
        const outcome = await storedOrRefused(
          "jobs",
          ["INVALID_TASK_NAME", "INVALID_QUEUE_NAME"],
          () => t.rota.enqueue(task, {}, { queue }),
        );
        if (outcome.ok) {
          const job = await t.rota.getJob(outcome.value.id);
          expect(job?.task).toBe(task);
          expect(job?.queue).toBe(queue);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("payloads of any shape: read back equal to their JSON, or refused as INVALID_PAYLOAD or PAYLOAD_TOO_LARGE", async () => {
    const key = fc.oneof(hostileText, fc.constantFrom("__proto__", "constructor", "$where"));
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof(
        { depthSize: "small" },
        hostileText,
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.constant(null),
        fc.constant(undefined),
        fc.bigInt(),
        fc.date(),
        fc.array(tie("tree"), { maxLength: 4 }),
        fc.dictionary(key, tie("tree"), { maxKeys: 4 }),
      ),
    }));
    await fc.assert(
      fc.asyncProperty(tree, async (payload) => {
        const outcome = await storedOrRefused(
          "jobs",
          ["INVALID_PAYLOAD", "PAYLOAD_TOO_LARGE"],
          () => t.rota.enqueue("hostile.payload", payload, { queue: "hostile" }),
        );
        if (outcome.ok) {
          const job = await t.rota.getJob(outcome.value.id);
          // Left out (undefined) is {}; JSON null is kept as null.
          expect(job?.payload).toEqual(
            payload === undefined ? {} : JSON.parse(JSON.stringify(payload)),
          );
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("payloads too deep, too large, circular or not JSON are refused whole, in enqueueMany too", async () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 5_000; i++) deep = { d: deep };
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const cases: [unknown, string][] = [
      [deep, "INVALID_PAYLOAD"],
      [{ blob: "x".repeat(2_000_000) }, "PAYLOAD_TOO_LARGE"],
      [circular, "INVALID_PAYLOAD"],
      [{ n: 1n }, "INVALID_PAYLOAD"],
      [() => 1, "INVALID_PAYLOAD"],
      [{ text: "nul \u0000 inside" }, "INVALID_PAYLOAD"],
      [{ text: "lone \ud800 surrogate" }, "INVALID_PAYLOAD"],
    ];
    for (const [payload, code] of cases) {
      const single = await storedOrRefused("jobs", [code], () =>
        t.rota.enqueue("hostile.shape", payload, { queue: "hostile" }),
      );
      expect(single).toEqual({ ok: false, code });
      // One bad job among good ones: the whole list is refused.
      const many = await storedOrRefused("jobs", [code], () =>
        t.rota.enqueueMany([
          { task: "hostile.shape", payload: { fine: true }, options: { queue: "hostile" } },
          { task: "hostile.shape", payload, options: { queue: "hostile" } },
        ]),
      );
      expect(many).toEqual({ ok: false, code });
    }
  });

  it("options of the wrong type or out of range are refused with their code, nothing written", async () => {
    const anything = fc.oneof(
      hostileText,
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 2 ** 31, 2 ** 53, "1", {}, []),
    );
    const field = fc.constantFrom(
      "priority",
      "maxAttempts",
      "delayMs",
      "runAt",
      "timeoutMs",
      "uniqueKey",
      "onConflict",
      "concurrencyKey",
      "concurrencyLimit",
      "backoff",
    );
    await fc.assert(
      fc.asyncProperty(field, anything, async (name, value) => {
        await storedOrRefused(
          "jobs",
          [
            "INVALID_PRIORITY",
            "INVALID_MAX_ATTEMPTS",
            "INVALID_RUN_AT",
            "INVALID_OPTION",
            "INVALID_QUEUE_NAME",
          ],
          () =>
            t.rota.enqueue("hostile.options", {}, {
              queue: "hostile",
              [name]: value,
            } as never),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it("schedules: names, crons, intervals and timezones stored as given, or refused with their code and nothing written", async () => {
    const cron = fc.oneof(
      hostileText,
      fc.constantFrom(
        "* * * * *",
        "0 9 * * 1-5",
        "*/5 * * * * *",
        "60 * * * *",
        "* * * *",
        "@daily",
      ),
    );
    const every = fc.oneof(
      hostileText,
      fc.constantFrom("5m", "1h", "0s", "-1m", "1.5h", "999999999d"),
    );
    const timezone = fc.oneof(
      hostileText,
      fc.constantFrom("UTC", "Europe/Berlin", "America/New_York", "Mars/Olympus", "+05:00"),
    );
    const spec = fc.oneof(
      cron.map((c) => ({ cron: c })),
      every.map((e) => ({ every: e })),
      fc.record({ cron, every }),
    );
    const codes = [
      "INVALID_SCHEDULE_NAME",
      "INVALID_SCHEDULE_SPEC",
      "INVALID_CRON",
      "INVALID_INTERVAL",
      "INVALID_TIMEZONE",
      "INVALID_TASK_NAME",
      "INVALID_QUEUE_NAME",
      "INVALID_OPTION",
    ];
    await fc.assert(
      fc.asyncProperty(hostileText, spec, timezone, async (name, timing, zone) => {
        const outcome = await storedOrRefused("schedules", codes, () =>
          t.rota.schedules.upsert({ name, task: "hostile.scheduled", timezone: zone, ...timing }),
        );
        if (outcome.ok) {
          const stored = await t.rota.schedules.get(name);
          expect(stored?.name).toBe(name);
          await t.rota.schedules.remove(name);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("schedule target keys: stored exactly as given, or refused as INVALID_TARGET with none written", async () => {
    await t.rota.schedules.upsert({
      name: "hostile.fan",
      task: "hostile.scan",
      cron: "0 * * * *",
      window: "10m",
    });
    await fc.assert(
      fc.asyncProperty(fc.array(hostileText, { minLength: 1, maxLength: 4 }), async (keys) => {
        const outcome = await storedOrRefused("schedule_targets", ["INVALID_TARGET"], () =>
          t.rota.schedules.targets.add("hostile.fan", keys),
        );
        if (outcome.ok) {
          const listed = (
            await t.rota.schedules.targets.list("hostile.fan", { limit: 10_000 })
          ).map((target) => target.key);
          for (const key of keys) expect(listed).toContain(key);
          await t.rota.schedules.targets.remove("hostile.fan", keys);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("the SQL enqueue function refuses hostile names and options with rota's codes, writing nothing", async () => {
    const options = fc.dictionary(
      fc.constantFrom(
        "queue",
        "priority",
        "max_attempts",
        "delay",
        "run_at",
        "unique_key",
        "nonsense",
      ),
      fc.oneof(hostileText, fc.integer(), fc.boolean(), fc.constant(null)),
      { maxKeys: 3 },
    );
    await fc.assert(
      fc.asyncProperty(hostileText, options, async (task, opts) => {
        const before = await count("jobs");
        try {
          const result = await t.db.pool.query(
            `select ${s}.enqueue($1, '{}'::jsonb, $2::jsonb)::text as id`,
            [task, JSON.stringify(opts)],
          );
          const job = await t.rota.getJob(result.rows[0].id);
          expect(job?.task).toBe(task);
        } catch (error) {
          const message = (error as Error).message;
          // rota's own refusal ends with its code in brackets (22023, as
          // the TypeScript API's code); a value PostgreSQL cannot take as
          // text or JSON (a NUL byte, an unpaired surrogate) is refused as
          // input before the function runs. Never a syntax error: nothing
          // was spliced into SQL.
          const code = (error as { code?: string }).code;
          if (code === "22023") expect(message).toMatch(/\[(INVALID_[A-Z_]+|PAYLOAD_TOO_LARGE)\]$/);
          else expect(["22021", "22P02", "22P05"]).toContain(code);
          expect(await count("jobs")).toBe(before);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("the CLI refuses hostile arguments with a code on stderr, exit 1, and writes nothing", async () => {
    const cases: [string[], string][] = [
      [
        ["schedules", "add", "x'; drop table canary; --", "--task", "t", "--cron", "* * * * *"],
        "INVALID_SCHEDULE_NAME",
      ],
      [
        ["schedules", "add", "ok.name", "--task", "t", "--cron", "* * * * *; drop table canary"],
        "INVALID_CRON",
      ],
      [
        [
          "schedules",
          "add",
          "ok.name",
          "--task",
          "t",
          "--cron",
          "0 9 * * *",
          "--timezone",
          "UTC'; --",
        ],
        "INVALID_TIMEZONE",
      ],
      [
        ["schedules", "add", "ok.name", "--task", "t", "--every", "1h", "--payload", "{not json"],
        "INVALID_PAYLOAD",
      ],
      [["queues", "pause", 'mail"; delete from jobs; --'], "INVALID_QUEUE_NAME"],
      [["queues", "limit", "mail", "-3"], "INVALID_OPTION"],
      [["jobs", "get", "1; drop table canary"], "JOB_NOT_FOUND"],
      [["jobs", "list", "--state", "failed' or '1'='1"], "INVALID_OPTION"],
      [["jobs", "list", "--before", "9 or 1=1"], "INVALID_OPTION"],
      [
        [
          "capture",
          "add",
          "c",
          "--table",
          "canary; drop table canary",
          "--on",
          "update",
          "--task",
          "t",
        ],
        "INVALID_CAPTURE",
      ],
    ];
    const before = { jobs: await count("jobs"), schedules: await count("schedules") };
    for (const [args, code] of cases) {
      const result = await cli(...args);
      expect(result.code, args.join(" ")).toBe(1);
      expect(result.stderr, args.join(" ")).toContain(code);
    }
    expect({ jobs: await count("jobs"), schedules: await count("schedules") }).toEqual(before);
    expect((await t.rota.queues.list()).some((q) => q.paused)).toBe(false);
  });

  it("no injection reached SQL: the canary table stands and holds its row", async () => {
    expect(await count("canary")).toBe(1);
  });
});
