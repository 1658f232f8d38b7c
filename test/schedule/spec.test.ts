import fc from "fast-check";
import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import { RotaError } from "../../src/errors.js";
import {
  compileSpec,
  defaultAnchor,
  MIN_EVERY_MS,
  nextOccurrences,
  parseInterval,
  type ScheduleSpec,
  validateTimezone,
} from "../../src/schedule/spec.js";

/**
 * The schedule maths of src/schedule/spec.ts, pure: no clock, no database.
 * Example tests pin the documented behaviour; property tests (fast-check)
 * pin the invariants every grid must keep.
 */

const iso = (dates: Date[]) => dates.map((d) => d.toISOString());
const at = (text: string) => new Date(text);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The RotaError `fn` throws; fails the test if it throws nothing or something else. */
function rotaErrorOf(fn: () => unknown): RotaError {
  try {
    fn();
  } catch (error) {
    if (error instanceof RotaError) return error;
    throw new Error(`expected a RotaError, got ${String(error)}`);
  }
  throw new Error("expected a RotaError, nothing was thrown");
}

/** Local wall-clock view of an instant in a zone. */
const local = (d: Date, zone: string) => DateTime.fromJSDate(d, { zone });

describe("cron", () => {
  it("a rare expression yields the occurrences that exist, each once (Feb 29 in Berlin)", () => {
    for (const zone of ["Europe/Berlin", "America/New_York", "UTC"]) {
      const runs = nextOccurrences(
        { cron: "0 0 29 2 *", timezone: zone },
        at("2026-12-07T00:00:00Z"),
        6,
      );
      expect(runs.map((r) => local(r, zone).toFormat("yyyy-MM-dd HH:mm"))).toEqual(
        [2028, 2032, 2036, 2040, 2044, 2048].map((y) => `${y}-02-29 00:00`),
      );
    }
  });

  it("a 5-field expression fires on its minutes, strictly after the given time", () => {
    const spec: ScheduleSpec = { cron: "*/15 * * * *", timezone: "UTC" };
    expect(iso(nextOccurrences(spec, at("2026-02-10T10:07:00Z"), 4))).toEqual([
      "2026-02-10T10:15:00.000Z",
      "2026-02-10T10:30:00.000Z",
      "2026-02-10T10:45:00.000Z",
      "2026-02-10T11:00:00.000Z",
    ]);
    // An occurrence itself is not "after" itself.
    expect(iso(nextOccurrences(spec, at("2026-02-10T10:15:00Z"), 1))).toEqual([
      "2026-02-10T10:30:00.000Z",
    ]);
    expect(iso(nextOccurrences(spec, at("2026-02-10T10:14:59.999Z"), 1))).toEqual([
      "2026-02-10T10:15:00.000Z",
    ]);
  });

  it("reads the fields in the schedule's timezone", () => {
    // 09:00 on weekdays in Berlin is 08:00 UTC in winter (CET, +01:00).
    const spec: ScheduleSpec = { cron: "0 9 * * 1-5", timezone: "Europe/Berlin" };
    expect(iso(nextOccurrences(spec, at("2026-02-06T12:00:00Z"), 3))).toEqual([
      "2026-02-09T08:00:00.000Z", // Monday (Friday's 09:00 had passed, then the weekend)
      "2026-02-10T08:00:00.000Z",
      "2026-02-11T08:00:00.000Z",
    ]);
    // Summer time (CEST, +02:00): 07:00 UTC.
    expect(iso(nextOccurrences(spec, at("2026-06-01T00:00:00Z"), 1))).toEqual([
      "2026-06-01T07:00:00.000Z",
    ]);
  });

  it("a 6-field expression has seconds first", () => {
    expect(
      iso(
        nextOccurrences({ cron: "*/10 * * * * *", timezone: "UTC" }, at("2026-03-06T00:00:00Z"), 3),
      ),
    ).toEqual(["2026-03-06T00:00:10.000Z", "2026-03-06T00:00:20.000Z", "2026-03-06T00:00:30.000Z"]);
    expect(
      iso(
        nextOccurrences(
          { cron: "30 0 9 * * *", timezone: "America/New_York" },
          at("2026-01-10T00:00:00Z"),
          2,
        ),
      ),
    ).toEqual(["2026-01-10T14:00:30.000Z", "2026-01-11T14:00:30.000Z"]);
  });

  it("day of month and day of week both restricted: either matches (Vixie cron)", () => {
    // The 13th of each month OR any Friday. 13 April 2026 is a Monday.
    const spec: ScheduleSpec = { cron: "0 0 13 * 5", timezone: "UTC" };
    expect(iso(nextOccurrences(spec, at("2026-04-01T00:00:00Z"), 4))).toEqual([
      "2026-04-03T00:00:00.000Z",
      "2026-04-10T00:00:00.000Z",
      "2026-04-13T00:00:00.000Z",
      "2026-04-17T00:00:00.000Z",
    ]);
  });

  it.each([
    [
      "@hourly",
      "UTC",
      "2026-03-06T00:20:00Z",
      ["2026-03-06T01:00:00.000Z", "2026-03-06T02:00:00.000Z"],
    ],
    [
      "@daily",
      "America/New_York",
      "2026-01-06T12:00:00Z",
      ["2026-01-07T05:00:00.000Z", "2026-01-08T05:00:00.000Z"],
    ],
    // 8 March 2026 is a Sunday.
    [
      "@weekly",
      "UTC",
      "2026-03-06T00:00:00Z",
      ["2026-03-08T00:00:00.000Z", "2026-03-15T00:00:00.000Z"],
    ],
    [
      "@monthly",
      "Europe/Berlin",
      "2026-01-15T00:00:00Z",
      ["2026-01-31T23:00:00.000Z", "2026-02-28T23:00:00.000Z"],
    ],
    [
      "@yearly",
      "UTC",
      "2026-03-06T00:00:00Z",
      ["2027-01-01T00:00:00.000Z", "2028-01-01T00:00:00.000Z"],
    ],
    [
      "@annually",
      "UTC",
      "2026-03-06T00:00:00Z",
      ["2027-01-01T00:00:00.000Z", "2028-01-01T00:00:00.000Z"],
    ],
  ])("nickname %s in %s", (cron, timezone, after, expected) => {
    expect(iso(nextOccurrences({ cron, timezone }, at(after), 2))).toEqual(expected);
  });

  it("surrounding whitespace is ignored", () => {
    const a = nextOccurrences({ cron: "  5 4 * * *  ", timezone: "UTC" }, at("2026-01-01Z"), 3);
    const b = nextOccurrences({ cron: "5 4 * * *", timezone: "UTC" }, at("2026-01-01Z"), 3);
    expect(iso(a)).toEqual(iso(b));
  });

  it("an expression that never matches yields no occurrences", () => {
    expect(nextOccurrences({ cron: "0 0 31 2 *", timezone: "UTC" }, at("2026-01-01Z"), 3)).toEqual(
      [],
    );
    expect(compileSpec({ cron: "0 0 30 2 *", timezone: "UTC" }).next(at("2026-01-01Z"))).toBeNull();
  });

  it("count 0 gives nothing", () => {
    expect(nextOccurrences({ cron: "* * * * *", timezone: "UTC" }, at("2026-01-01Z"), 0)).toEqual(
      [],
    );
  });
});

describe("every, exact units (s, m, h): anchor + k × interval in elapsed time", () => {
  const anchor = at("2026-01-01T00:00:00Z");

  it("the anchor itself is the first occurrence, then each step", () => {
    const spec: ScheduleSpec = { every: "90m", anchor, timezone: "UTC" };
    expect(iso(nextOccurrences(spec, at("2025-12-31T00:00:00Z"), 3))).toEqual([
      "2026-01-01T00:00:00.000Z",
      "2026-01-01T01:30:00.000Z",
      "2026-01-01T03:00:00.000Z",
    ]);
    expect(iso(nextOccurrences(spec, anchor, 1))).toEqual(["2026-01-01T01:30:00.000Z"]);
    // Far from the anchor, still on its grid.
    expect(iso(nextOccurrences(spec, at("2026-02-01T00:10:00Z"), 2))).toEqual([
      "2026-02-01T01:30:00.000Z",
      "2026-02-01T03:00:00.000Z",
    ]);
  });

  it("short and ISO 8601 spellings of one interval give one grid", () => {
    const after = at("2026-03-01T00:00:00Z");
    const grid = (every: string) =>
      iso(nextOccurrences({ every, anchor, timezone: "UTC" }, after, 5));
    expect(grid("1h30m")).toEqual(grid("90m"));
    expect(grid("PT90M")).toEqual(grid("90m"));
    expect(grid("PT1H30M")).toEqual(grid("90m"));
    expect(grid("5400s")).toEqual(grid("90m"));
    expect(grid("45s")).toEqual(
      Array.from({ length: 5 }, (_, k) =>
        new Date(after.getTime() + (k + 1) * 45_000).toISOString(),
      ),
    );
  });

  it("hours are elapsed time across DST: the local time of day moves", () => {
    // 09:00 EST on 1 March; "24h" stays 24 real hours apart, so after the
    // spring change (8 March) it lands at 10:00 EDT.
    const nine = at("2026-03-01T14:00:00Z");
    const occ = nextOccurrences(
      { every: "24h", anchor: nine, timezone: "America/New_York" },
      at("2026-03-06T00:00:00Z"),
      5,
    );
    for (let i = 1; i < occ.length; i++) {
      expect((occ[i] as Date).getTime() - (occ[i - 1] as Date).getTime()).toBe(DAY);
    }
    expect(occ.map((d) => local(d, "America/New_York").hour)).toEqual([9, 9, 10, 10, 10]);
  });

  it("an hourly interval keeps a 60-minute spacing through the spring gap", () => {
    const occ = nextOccurrences(
      { every: "1h", timezone: "America/New_York" },
      at("2026-03-08T05:30:00Z"),
      4,
    );
    expect(iso(occ)).toEqual([
      "2026-03-08T06:00:00.000Z", // 01:00 EST
      "2026-03-08T07:00:00.000Z", // 03:00 EDT (02:00 does not exist)
      "2026-03-08T08:00:00.000Z",
      "2026-03-08T09:00:00.000Z",
    ]);
    expect(occ.map((d) => local(d, "America/New_York").hour)).toEqual([1, 3, 4, 5]);
  });
});

describe("every, calendar units (d, w, mo): local time of day kept in the timezone", () => {
  it("1d at 09:00 local stays at 09:00 across the spring change", () => {
    const zone = "America/New_York";
    const occ = nextOccurrences(
      { every: "1d", anchor: at("2026-03-01T14:00:00Z"), timezone: zone },
      at("2026-03-06T00:00:00Z"),
      4,
    );
    expect(iso(occ)).toEqual([
      "2026-03-06T14:00:00.000Z",
      "2026-03-07T14:00:00.000Z",
      "2026-03-08T13:00:00.000Z",
      "2026-03-09T13:00:00.000Z",
    ]);
  });

  it("1w keeps weekday and local time across a DST change", () => {
    const zone = "Europe/Berlin";
    // Monday 12 October 2026, 18:45 CEST.
    const anchor = at("2026-10-12T16:45:00Z");
    const occ = nextOccurrences({ every: "1w", anchor, timezone: zone }, anchor, 4);
    expect(occ.map((d) => local(d, zone).toFormat("ccc HH:mm"))).toEqual([
      "Mon 18:45",
      "Mon 18:45",
      "Mon 18:45",
      "Mon 18:45",
    ]);
    expect(iso(occ)).toEqual([
      "2026-10-19T16:45:00.000Z",
      "2026-10-26T17:45:00.000Z", // CET from 25 October
      "2026-11-02T17:45:00.000Z",
      "2026-11-09T17:45:00.000Z",
    ]);
  });

  it("a daily time inside the spring gap moves forward by the gap that day only", () => {
    // 02:30 EST on 1 March; 02:30 does not exist on 8 March.
    const zone = "America/New_York";
    const occ = nextOccurrences(
      { every: "1d", anchor: at("2026-03-01T07:30:00Z"), timezone: zone },
      at("2026-03-07T00:00:00Z"),
      3,
    );
    expect(occ.map((d) => local(d, zone).toFormat("MM-dd HH:mm"))).toEqual([
      "03-07 02:30",
      "03-08 03:30",
      "03-09 02:30",
    ]);
  });

  it("1mo from the 31st clamps to each month's end, computed from the anchor (no drift)", () => {
    const zone = "Europe/Berlin";
    const anchor = DateTime.fromObject(
      { year: 2026, month: 1, day: 31, hour: 10, minute: 15 },
      { zone },
    ).toJSDate();
    const occ = nextOccurrences({ every: "1mo", anchor, timezone: zone }, anchor, 24);
    expect(occ).toHaveLength(24);
    occ.forEach((d, i) => {
      const expected = DateTime.fromObject({ year: 2026, month: 1, day: 1 }, { zone }).plus({
        months: i + 1,
      });
      const day = Math.min(31, expected.daysInMonth as number);
      expect(local(d, zone).toFormat("yyyy-MM-dd HH:mm")).toBe(
        `${expected.toFormat("yyyy-MM")}-${String(day).padStart(2, "0")} 10:15`,
      );
    });
    // After February's clamp (28th), March is back on the 31st, not the 28th.
    expect(local(occ[0] as Date, zone).toISODate()).toBe("2026-02-28");
    expect(local(occ[1] as Date, zone).toISODate()).toBe("2026-03-31");
    expect(local(occ[23] as Date, zone).toISODate()).toBe("2028-01-31");
    // 2028 is a leap year.
    expect(local(occ[12] as Date, zone).toISODate()).toBe("2027-02-28");
    const feb2028 = nextOccurrences({ every: "1mo", anchor, timezone: zone }, at("2028-02-01Z"), 1);
    expect(local(feb2028[0] as Date, zone).toISODate()).toBe("2028-02-29");
  });

  it("1mo from the 30th returns to the 30th after February", () => {
    const anchor = at("2026-01-30T12:00:00Z");
    const occ = nextOccurrences({ every: "1mo", anchor, timezone: "UTC" }, anchor, 3);
    expect(iso(occ)).toEqual([
      "2026-02-28T12:00:00.000Z",
      "2026-03-30T12:00:00.000Z",
      "2026-04-30T12:00:00.000Z",
    ]);
  });

  it("walking from any occurrence gives the same grid as walking from the anchor", () => {
    const spec: ScheduleSpec = {
      every: "1mo",
      anchor: at("2026-01-31T08:00:00Z"),
      timezone: "America/New_York",
    };
    const all = nextOccurrences(spec, at("2026-01-01Z"), 30);
    for (const i of [3, 11, 17, 28]) {
      expect(iso(nextOccurrences(spec, all[i] as Date, 1))).toEqual([
        (all[i + 1] as Date).toISOString(),
      ]);
    }
  });
});

describe("every without an anchor counts from midnight 1970-01-01 in the timezone", () => {
  it("defaultAnchor is local midnight on 1 January 1970", () => {
    expect(defaultAnchor("UTC").toISOString()).toBe("1970-01-01T00:00:00.000Z");
    expect(defaultAnchor("America/New_York").toISOString()).toBe("1970-01-01T05:00:00.000Z");
    expect(defaultAnchor("Europe/Berlin").toISOString()).toBe("1969-12-31T23:00:00.000Z");
    expect(defaultAnchor("Asia/Kolkata").toISOString()).toBe("1969-12-31T18:30:00.000Z");
  });

  it("an exact interval sits on the grid of that anchor", () => {
    const zone = "America/New_York";
    const step = 90 * 60_000;
    const after = at("2026-03-06T00:00:00Z");
    const occ = nextOccurrences({ every: "90m", timezone: zone }, after, 3);
    const origin = defaultAnchor(zone).getTime();
    for (const d of occ) expect((d.getTime() - origin) % step).toBe(0);
    expect(iso(occ)).toEqual([
      "2026-03-06T00:30:00.000Z",
      "2026-03-06T02:00:00.000Z",
      "2026-03-06T03:30:00.000Z",
    ]);
    // Same as giving that anchor; null is the same as none.
    expect(
      iso(nextOccurrences({ every: "90m", anchor: defaultAnchor(zone), timezone: zone }, after, 3)),
    ).toEqual(iso(occ));
    expect(iso(nextOccurrences({ every: "90m", anchor: null, timezone: zone }, after, 3))).toEqual(
      iso(occ),
    );
  });

  it("1d without an anchor is local midnight every day", () => {
    const zone = "Europe/Berlin";
    const occ = nextOccurrences({ every: "1d", timezone: zone }, at("2026-03-27T12:00:00Z"), 4);
    expect(occ.map((d) => local(d, zone).toFormat("MM-dd HH:mm"))).toEqual([
      "03-28 00:00",
      "03-29 00:00",
      "03-30 00:00",
      "03-31 00:00",
    ]);
  });

  it("an anchor in the future is the first occurrence", () => {
    const anchor = at("2030-05-05T05:05:05Z");
    expect(
      iso(nextOccurrences({ every: "1d", anchor, timezone: "UTC" }, at("2026-01-01Z"), 2)),
    ).toEqual(["2030-05-05T05:05:05.000Z", "2030-05-06T05:05:05.000Z"]);
  });
});

describe("parseInterval", () => {
  it.each([
    ["1s", { months: 0, days: 0, ms: 1_000 }],
    ["1000ms", { months: 0, days: 0, ms: 1_000 }],
    ["90m", { months: 0, days: 0, ms: 90 * 60_000 }],
    ["1h30m", { months: 0, days: 0, ms: 90 * 60_000 }],
    ["1h 30m", { months: 0, days: 0, ms: 90 * 60_000 }],
    ["2H", { months: 0, days: 0, ms: 2 * HOUR }],
    ["3d", { months: 0, days: 3, ms: 0 }],
    ["2w", { months: 0, days: 14, ms: 0 }],
    ["1mo", { months: 1, days: 0, ms: 0 }],
    ["1mo2d3h", { months: 1, days: 2, ms: 3 * HOUR }],
    ["PT90M", { months: 0, days: 0, ms: 90 * 60_000 }],
    ["P3D", { months: 0, days: 3, ms: 0 }],
    ["P1Y2M", { months: 14, days: 0, ms: 0 }],
    ["P1W", { months: 0, days: 7, ms: 0 }],
    ["P1DT12H", { months: 0, days: 1, ms: 12 * HOUR }],
    ["pt30s", { months: 0, days: 0, ms: 30_000 }],
    ["  15m ", { months: 0, days: 0, ms: 15 * 60_000 }],
  ])("%j", (text, expected) => {
    expect(parseInterval(text)).toEqual(expected);
  });

  it.each([
    "",
    "   ",
    "0s",
    "999ms",
    "500ms",
    "5",
    "1x",
    "m",
    "-5m",
    "1.5h",
    "90 minutes",
    "1h-30m",
    "P",
    "PT",
    "P1DT",
    "PT0S",
    "P1.5D",
    "every 5m",
    "99999999999999999999h",
    null,
    undefined,
    42,
    {},
  ])("refuses %j with INVALID_INTERVAL", (text) => {
    const error = rotaErrorOf(() => parseInterval(text));
    expect(error.code).toBe("INVALID_INTERVAL");
    expect(error.details).toMatchObject({ field: "every" });
    expect(error.message).toContain(JSON.stringify(text) ?? "undefined");
    // Actionable: it shows spellings that work.
    expect(error.message).toContain('"90m"');
    expect(error.message).toContain('"PT90M"');
  });

  it("MIN_EVERY_MS is the shortest exact interval accepted", () => {
    expect(parseInterval(`${MIN_EVERY_MS}ms`).ms).toBe(MIN_EVERY_MS);
    expect(() => parseInterval(`${MIN_EVERY_MS - 1}ms`)).toThrow(RotaError);
  });
});

describe("validateTimezone", () => {
  it.each(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"])(
    "accepts %s",
    (zone) => {
      expect(validateTimezone(zone)).toBe(zone);
    },
  );

  it.each(["Mars/Olympus_Mons", "", "Europe/Berlín", "GMT+25", null, undefined, 7])(
    "refuses %j with INVALID_TIMEZONE",
    (zone) => {
      const error = rotaErrorOf(() => validateTimezone(zone));
      expect(error.code).toBe("INVALID_TIMEZONE");
      expect(error.details).toMatchObject({ field: "timezone" });
      expect(error.message).toContain("IANA");
      expect(error.message).toContain('"Europe/Berlin"');
    },
  );
});

describe("compileSpec refuses bad specs with a code and a message a person can act on", () => {
  it.each([
    ["", "0 fields"],
    ["* * * *", "4 fields"],
    ["* * * * * * *", "7 fields"],
    ["@reboot", "1 field"],
    ["@every 5m", "2 fields"],
    ["61 * * * *", "minute"],
    ["* 24 * * *", "hour"],
    ["* * 32 * *", ""],
    ["* * * 13 *", ""],
    ["bogus x y z w", ""],
    ["*/0 * * * *", ""],
  ])("cron %j: INVALID_CRON", (cron, why) => {
    const error = rotaErrorOf(() => compileSpec({ cron, timezone: "UTC" }));
    expect(error.code).toBe("INVALID_CRON");
    expect(error.details).toMatchObject({ field: "cron", value: cron });
    expect(error.message).toContain(JSON.stringify(cron));
    expect(error.message).toContain(why);
    expect(error.message).toContain('"*/15 * * * *"');
  });

  it("an invalid timezone: INVALID_TIMEZONE, for cron and every alike", () => {
    expect(
      rotaErrorOf(() => compileSpec({ cron: "* * * * *", timezone: "Nowhere/Town" })).code,
    ).toBe("INVALID_TIMEZONE");
    expect(rotaErrorOf(() => compileSpec({ every: "1h", timezone: "Nowhere/Town" })).code).toBe(
      "INVALID_TIMEZONE",
    );
  });

  it("an invalid interval or anchor: INVALID_INTERVAL", () => {
    expect(rotaErrorOf(() => compileSpec({ every: "soon", timezone: "UTC" })).code).toBe(
      "INVALID_INTERVAL",
    );
    const bad = rotaErrorOf(() =>
      compileSpec({ every: "1h", anchor: new Date(Number.NaN), timezone: "UTC" }),
    );
    expect(bad.code).toBe("INVALID_INTERVAL");
    expect(bad.details).toMatchObject({ field: "anchor" });
    expect(bad.message).toMatch(/anchor/i);
  });

  it("both cron and every, or neither: INVALID_SCHEDULE_SPEC", () => {
    const both = rotaErrorOf(() =>
      compileSpec({ cron: "* * * * *", every: "1h", timezone: "UTC" } as unknown as ScheduleSpec),
    );
    expect(both.code).toBe("INVALID_SCHEDULE_SPEC");
    expect(both.message).toMatch(/cron or every/);
    const neither = rotaErrorOf(() => compileSpec({ timezone: "UTC" } as unknown as ScheduleSpec));
    expect(neither.code).toBe("INVALID_SCHEDULE_SPEC");
    expect(neither.message).toMatch(/cron or every/);
  });

  it("validation does not depend on the compile cache (both cron and every)", () => {
    compileSpec({ every: "7h", timezone: "UTC" });
    const error = rotaErrorOf(() =>
      compileSpec({ cron: "", every: "7h", timezone: "UTC" } as unknown as ScheduleSpec),
    );
    expect(error.code).toBe("INVALID_SCHEDULE_SPEC");
  });

  it("an interval reaching past the end of time ends the grid or is refused", () => {
    let thrown: unknown = null;
    let occ: Date[] = [];
    try {
      occ = nextOccurrences({ every: "100000000d", timezone: "UTC" }, at("2026-01-01Z"), 3);
    } catch (error) {
      thrown = error;
    }
    if (thrown !== null) expect((thrown as RotaError).code).toBe("INVALID_INTERVAL");
    for (const d of occ) expect(Number.isNaN(d.getTime())).toBe(false);
  });
});

// ----------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------

const ZONES = [
  "UTC",
  "America/New_York",
  "Europe/Berlin",
  "Asia/Kolkata",
  "Australia/Lord_Howe", // 30-minute DST shift
  "America/Sao_Paulo",
] as const;

const zone = fc.constantFrom(...ZONES);
const instant = fc.date({
  min: new Date("2020-01-01T00:00:00Z"),
  max: new Date("2032-12-31T00:00:00Z"),
  noInvalidDate: true,
});

/** A cron field: *, a step, a value, or a list of two values. */
const field = (min: number, max: number) =>
  fc.oneof(
    fc.constant("*"),
    fc.integer({ min: 2, max: Math.max(2, Math.floor((max - min + 1) / 2)) }).map((n) => `*/${n}`),
    fc.integer({ min, max }).map(String),
    fc
      .uniqueArray(fc.integer({ min, max }), { minLength: 2, maxLength: 2 })
      .map((vs) => vs.sort((a, b) => a - b).join(",")),
  );

const cronSpec: fc.Arbitrary<ScheduleSpec> = fc
  .record({
    second: fc.option(fc.constantFrom("0", "30", "*/20"), { nil: undefined }),
    minute: field(0, 59),
    hour: field(0, 23),
    dom: fc.oneof(fc.constant("*"), fc.integer({ min: 1, max: 28 }).map(String)),
    dow: fc.oneof(fc.constant("*"), fc.integer({ min: 0, max: 6 }).map(String)),
    timezone: zone,
  })
  .map(({ second, minute, hour, dom, dow, timezone }) => ({
    cron: `${second === undefined ? "" : `${second} `}${minute} ${hour} ${dom} * ${dow}`,
    timezone,
  }));

const exactUnit = fc.constantFrom(["s", 1_000], ["m", 60_000], ["h", HOUR]) as fc.Arbitrary<
  [string, number]
>;
const exactEvery = fc.record({
  n: fc.integer({ min: 1, max: 180 }),
  unit: exactUnit,
  anchor: fc.option(instant, { nil: undefined }),
  timezone: zone,
});

const calendarEvery = fc.record({
  n: fc.integer({ min: 1, max: 12 }),
  unit: fc.constantFrom("d", "w", "mo"),
  anchor: fc.option(instant, { nil: undefined }),
  timezone: zone,
});

const anySpec: fc.Arbitrary<ScheduleSpec> = fc.oneof(
  cronSpec,
  exactEvery.map(({ n, unit, anchor, timezone }) => ({
    every: `${n}${unit[0]}`,
    anchor: anchor ?? null,
    timezone,
  })),
  calendarEvery.map(({ n, unit, anchor, timezone }) => ({
    every: `${n}${unit}`,
    anchor: anchor ?? null,
    timezone,
  })),
);

describe("properties", () => {
  it("occurrences are strictly increasing and never at or before `after`", () => {
    fc.assert(
      fc.property(anySpec, instant, fc.integer({ min: 1, max: 25 }), (spec, after, n) => {
        const occ = nextOccurrences(spec, after, n);
        let previous = after.getTime();
        for (const d of occ) {
          expect(d.getTime()).toBeGreaterThan(previous);
          previous = d.getTime();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("nextOccurrences(after, n) equals walking next() n times, and is a prefix of a longer walk", () => {
    fc.assert(
      fc.property(anySpec, instant, fc.integer({ min: 1, max: 15 }), (spec, after, n) => {
        const grid = compileSpec(spec);
        const walked: Date[] = [];
        let cursor: Date | null = after;
        for (let i = 0; i < n && cursor !== null; i++) {
          cursor = grid.next(cursor);
          if (cursor !== null) walked.push(cursor);
        }
        const occ = nextOccurrences(spec, after, n);
        expect(iso(occ)).toEqual(iso(walked));
        expect(iso(nextOccurrences(spec, after, n + 5).slice(0, occ.length))).toEqual(iso(occ));
      }),
      { numRuns: 300 },
    );
  });

  it("resuming from any occurrence continues the same grid", () => {
    fc.assert(
      fc.property(anySpec, instant, fc.integer({ min: 0, max: 9 }), (spec, after, i) => {
        const occ = nextOccurrences(spec, after, 12);
        fc.pre(occ.length > i + 1);
        expect(iso(nextOccurrences(spec, occ[i] as Date, occ.length - i - 1))).toEqual(
          iso(occ.slice(i + 1)),
        );
        // Any instant strictly between two occurrences leads to the later one.
        const a = (occ[i] as Date).getTime();
        const b = (occ[i + 1] as Date).getTime();
        const mid = new Date(a + Math.floor((b - a) / 2));
        if (mid.getTime() > a)
          expect(iso(nextOccurrences(spec, mid, 1))).toEqual(iso([occ[i + 1] as Date]));
      }),
      { numRuns: 200 },
    );
  });

  it("exact-unit every: each occurrence is anchor + k × interval, one step apart", () => {
    fc.assert(
      fc.property(exactEvery, instant, ({ n, unit, anchor, timezone }, after) => {
        const step = n * unit[1];
        const origin = (anchor ?? defaultAnchor(timezone)).getTime();
        const occ = nextOccurrences(
          { every: `${n}${unit[0]}`, anchor: anchor ?? null, timezone },
          after,
          6,
        );
        expect(occ).toHaveLength(6);
        for (const d of occ) {
          const k = (d.getTime() - origin) / step;
          expect(Number.isInteger(k)).toBe(true);
          expect(k).toBeGreaterThanOrEqual(0);
        }
        for (let i = 1; i < occ.length; i++) {
          expect((occ[i] as Date).getTime() - (occ[i - 1] as Date).getTime()).toBe(step);
        }
        // The first one is the first grid point after `after` (or the anchor).
        const first = (occ[0] as Date).getTime();
        expect(first - step <= after.getTime() || first === origin).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("day and week every: the anchor's local time of day, N calendar days apart", () => {
    fc.assert(
      fc.property(
        fc.record({
          n: fc.integer({ min: 1, max: 10 }),
          unit: fc.constantFrom("d", "w"),
          anchor: instant,
          timezone: zone,
        }),
        instant,
        ({ n, unit, anchor, timezone }, after) => {
          const days = unit === "w" ? n * 7 : n;
          const a = local(anchor, timezone);
          const occ = nextOccurrences({ every: `${n}${unit}`, anchor, timezone }, after, 6);
          for (const d of occ) {
            const l = local(d, timezone);
            // Whole calendar days from the anchor's local date, a multiple of the step.
            const dayDiff = Math.round(l.startOf("day").diff(a.startOf("day"), "days").days);
            if (l.toFormat("HH:mm:ss.SSS") === a.toFormat("HH:mm:ss.SSS")) {
              expect(dayDiff % days).toBe(0);
            } else {
              // Only where the anchor's wall time does not exist that day (a DST gap).
              const wanted = a.set({ year: l.year, month: l.month, day: l.day });
              const wall = DateTime.fromObject(
                {
                  year: l.year,
                  month: l.month,
                  day: l.day,
                  hour: a.hour,
                  minute: a.minute,
                  second: a.second,
                  millisecond: a.millisecond,
                },
                { zone: timezone },
              );
              expect(wall.hour !== a.hour || wall.minute !== a.minute).toBe(true);
              expect(Math.abs(l.toMillis() - wanted.toMillis())).toBeLessThanOrEqual(HOUR);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a 5-field cron equals the 6-field one with second 0", () => {
    fc.assert(
      fc.property(cronSpec, instant, (spec, after) => {
        const five = (spec.cron as string).split(" ").slice(-5).join(" ");
        const a = nextOccurrences({ cron: five, timezone: spec.timezone }, after, 8);
        const b = nextOccurrences({ cron: `0 ${five}`, timezone: spec.timezone }, after, 8);
        expect(iso(a)).toEqual(iso(b));
        for (const d of a) expect(d.getUTCSeconds()).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});
