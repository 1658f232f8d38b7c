import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import { nextOccurrences, type ScheduleSpec } from "../../src/schedule/spec.js";

/**
 * Daylight saving time, as documented at the top of src/schedule/spec.ts
 * (ISC/Vixie cron): a fixed-time job in the skipped local hour runs once right
 * after the change; one in the repeated hour runs once (at the first of the
 * two); wildcard-hour jobs keep their real-time cadence. Two zones, both
 * changes of 2026.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

interface Change {
  /** The local date of the change. */
  date: string;
  /** The instant of the change. */
  at: string;
  /** Local hour skipped (spring) or repeated (fall). */
  hour: number;
}

interface Zone {
  zone: string;
  spring: Change;
  fall: Change;
}

const ZONES: Zone[] = [
  {
    zone: "America/New_York",
    // 02:00 EST → 03:00 EDT; 02:00 EDT → 01:00 EST.
    spring: { date: "2026-03-08", at: "2026-03-08T07:00:00.000Z", hour: 2 },
    fall: { date: "2026-11-01", at: "2026-11-01T06:00:00.000Z", hour: 1 },
  },
  {
    zone: "Europe/Berlin",
    // 02:00 CET → 03:00 CEST; 03:00 CEST → 02:00 CET.
    spring: { date: "2026-03-29", at: "2026-03-29T01:00:00.000Z", hour: 2 },
    fall: { date: "2026-10-25", at: "2026-10-25T01:00:00.000Z", hour: 2 },
  },
];

const iso = (dates: Date[]) => dates.map((d) => d.toISOString());
const local = (d: Date, zone: string) => DateTime.fromJSDate(d, { zone });
const pad = (n: number) => String(n).padStart(2, "0");

/** Every occurrence in [from, until). */
function between(spec: ScheduleSpec, from: Date, until: Date): Date[] {
  const all = nextOccurrences(spec, new Date(from.getTime() - 1), 500);
  const out = all.filter((d) => d.getTime() < until.getTime());
  expect(out.length).toBeLessThan(all.length); // the window really ended inside the walk
  return out;
}

/** The local calendar day `date` in `zone`, as instants [start, end). */
function localDay(date: string, zone: string): [Date, Date] {
  const start = DateTime.fromISO(date, { zone }).startOf("day");
  return [start.toJSDate(), start.plus({ days: 1 }).toJSDate()];
}

function spacings(dates: Date[]): number[] {
  return dates.slice(1).map((d, i) => d.getTime() - (dates[i] as Date).getTime());
}

describe.each(ZONES)("$zone", ({ zone, spring, fall }) => {
  describe(`spring forward (${spring.date})`, () => {
    it.each([0, 30, 59])(
      `a job at minute %i of ${pad(spring.hour)}:00 (does not exist) runs once, right after the change`,
      (minute) => {
        const spec = { cron: `${minute} ${spring.hour} * * *`, timezone: zone };
        const [start, end] = localDay(spring.date, zone);
        const onTheDay = between(spec, start, end);
        expect(iso(onTheDay)).toEqual([spring.at]);
        expect(local(onTheDay[0] as Date, zone).toFormat("HH:mm")).toBe(
          `${pad(spring.hour + 1)}:00`,
        );
        // The days around keep their own local time.
        const around = between(
          spec,
          new Date(start.getTime() - 2 * 24 * HOUR),
          new Date(end.getTime() + 2 * 24 * HOUR),
        );
        expect(around).toHaveLength(5);
        expect(around.map((d) => local(d, zone).toFormat("HH:mm"))).toEqual([
          `${pad(spring.hour)}:${pad(minute)}`,
          `${pad(spring.hour)}:${pad(minute)}`,
          `${pad(spring.hour + 1)}:00`,
          `${pad(spring.hour)}:${pad(minute)}`,
          `${pad(spring.hour)}:${pad(minute)}`,
        ]);
      },
    );

    it(`a job at several minutes of the skipped hour runs once that day`, () => {
      const spec = { cron: `0,30 ${spring.hour} * * *`, timezone: zone };
      const [start, end] = localDay(spring.date, zone);
      expect(iso(between(spec, start, end))).toEqual([spring.at]);
    });

    it("a job outside the skipped hour keeps its local time; the UTC time moves by an hour", () => {
      const spec = { cron: "0 9 * * *", timezone: zone };
      const [start] = localDay(spring.date, zone);
      const occ = nextOccurrences(spec, new Date(start.getTime() - 24 * HOUR), 3);
      expect(occ.map((d) => local(d, zone).toFormat("HH:mm"))).toEqual(["09:00", "09:00", "09:00"]);
      expect(spacings(occ)).toEqual([23 * HOUR, 24 * HOUR]);
    });

    it("hourly (0 * * * *): a steady 60 minutes of real time; the local day has 23 of them", () => {
      const spec = { cron: "0 * * * *", timezone: zone };
      const [start, end] = localDay(spring.date, zone);
      const day = between(spec, start, end);
      expect(day).toHaveLength(23);
      expect(new Set(spacings(day))).toEqual(new Set([HOUR]));
      const hours = day.map((d) => local(d, zone).hour);
      expect(new Set(hours).size).toBe(23);
      expect(hours).not.toContain(spring.hour);
      // Any 24 hours of UTC around the change: 24 runs, 60 minutes apart.
      const change = new Date(spring.at).getTime();
      const utc = between(spec, new Date(change - 12 * HOUR), new Date(change + 12 * HOUR));
      expect(utc).toHaveLength(24);
      expect(new Set(spacings(utc))).toEqual(new Set([HOUR]));
      expect(utc).toContainEqual(new Date(spring.at));
    });

    it("every 15 minutes (*/15 * * * *): 92 runs in the 23-hour day, 15 minutes apart", () => {
      const spec = { cron: "*/15 * * * *", timezone: zone };
      const [start, end] = localDay(spring.date, zone);
      const day = between(spec, start, end);
      expect(day).toHaveLength(92);
      expect(new Set(spacings(day))).toEqual(new Set([15 * MINUTE]));
      const change = new Date(spring.at).getTime();
      const utc = between(spec, new Date(change - 12 * HOUR), new Date(change + 12 * HOUR));
      expect(utc).toHaveLength(96);
      expect(new Set(spacings(utc))).toEqual(new Set([15 * MINUTE]));
    });

    it("half past every hour (30 * * * *): 23 runs, 60 minutes apart, none at the missing hour", () => {
      const spec = { cron: "30 * * * *", timezone: zone };
      const [start, end] = localDay(spring.date, zone);
      const day = between(spec, start, end);
      expect(day).toHaveLength(23);
      expect(new Set(spacings(day))).toEqual(new Set([HOUR]));
      expect(day.map((d) => local(d, zone).toFormat("HH:mm"))).not.toContain(
        `${pad(spring.hour)}:30`,
      );
    });
  });

  describe(`fall back (${fall.date})`, () => {
    it.each([0, 30, 59])(
      `a job at minute %i of ${pad(fall.hour)}:00 (happens twice) runs once, at the first of the two`,
      (minute) => {
        const spec = { cron: `${minute} ${fall.hour} * * *`, timezone: zone };
        const [start, end] = localDay(fall.date, zone);
        const onTheDay = between(spec, start, end);
        const first = new Date(new Date(fall.at).getTime() - HOUR + minute * MINUTE);
        expect(iso(onTheDay)).toEqual([first.toISOString()]);
        // The first is in summer time: its offset is an hour more than the second's.
        const summer = local(first, zone);
        const winter = local(new Date(first.getTime() + HOUR), zone);
        expect(summer.toFormat("HH:mm")).toBe(winter.toFormat("HH:mm"));
        expect(summer.offset - winter.offset).toBe(60);
        // Next day: the local time again, once.
        const next = between(spec, end, new Date(end.getTime() + 24 * HOUR));
        expect(next.map((d) => local(d, zone).toFormat("HH:mm"))).toEqual([
          `${pad(fall.hour)}:${pad(minute)}`,
        ]);
      },
    );

    it("a job outside the repeated hour keeps its local time; the UTC time moves by an hour", () => {
      const spec = { cron: "0 9 * * *", timezone: zone };
      const [start] = localDay(fall.date, zone);
      const occ = nextOccurrences(spec, new Date(start.getTime() - 24 * HOUR), 3);
      expect(occ.map((d) => local(d, zone).toFormat("HH:mm"))).toEqual(["09:00", "09:00", "09:00"]);
      expect(spacings(occ)).toEqual([25 * HOUR, 24 * HOUR]);
    });

    it("hourly (0 * * * *): a steady 60 minutes; the local day has 25 runs, its repeated hour twice", () => {
      const spec = { cron: "0 * * * *", timezone: zone };
      const [start, end] = localDay(fall.date, zone);
      const day = between(spec, start, end);
      expect(day).toHaveLength(25);
      expect(new Set(spacings(day))).toEqual(new Set([HOUR]));
      const hours = day.map((d) => local(d, zone).hour);
      expect(new Set(hours).size).toBe(24);
      expect(hours.filter((h) => h === fall.hour)).toHaveLength(2);
      const change = new Date(fall.at).getTime();
      const utc = between(spec, new Date(change - 12 * HOUR), new Date(change + 12 * HOUR));
      expect(utc).toHaveLength(24);
      expect(new Set(spacings(utc))).toEqual(new Set([HOUR]));
    });

    it("every 15 minutes (*/15 * * * *): 100 runs in the 25-hour day, 15 minutes apart", () => {
      const spec = { cron: "*/15 * * * *", timezone: zone };
      const [start, end] = localDay(fall.date, zone);
      const day = between(spec, start, end);
      expect(day).toHaveLength(100);
      expect(new Set(spacings(day))).toEqual(new Set([15 * MINUTE]));
      const change = new Date(fall.at).getTime();
      const utc = between(spec, new Date(change - 12 * HOUR), new Date(change + 12 * HOUR));
      expect(utc).toHaveLength(96);
      expect(new Set(spacings(utc))).toEqual(new Set([15 * MINUTE]));
    });

    it("half past every hour (30 * * * *): 25 runs, the repeated half hour twice", () => {
      const spec = { cron: "30 * * * *", timezone: zone };
      const [start, end] = localDay(fall.date, zone);
      const day = between(spec, start, end);
      expect(day).toHaveLength(25);
      expect(new Set(spacings(day))).toEqual(new Set([HOUR]));
      const labels = day.map((d) => local(d, zone).toFormat("HH:mm"));
      expect(labels.filter((l) => l === `${pad(fall.hour)}:30`)).toHaveLength(2);
    });
  });

  describe('every "1d" anchored at 09:00 local', () => {
    it.each([
      ["spring", spring],
      ["fall", fall],
    ])("stays at 09:00 local across the %s change", (_, change) => {
      // Anchored weeks before the change, in the other offset.
      const anchor = DateTime.fromISO(`${change.date}T09:00:00`, { zone })
        .minus({ days: 40 })
        .toJSDate();
      expect(local(anchor, zone).toFormat("HH:mm")).toBe("09:00");
      const spec: ScheduleSpec = { every: "1d", anchor, timezone: zone };
      const from = DateTime.fromISO(change.date, { zone }).minus({ days: 3 }).toJSDate();
      const occ = nextOccurrences(spec, from, 7);
      expect(occ.map((d) => local(d, zone).toFormat("HH:mm"))).toEqual(Array(7).fill("09:00"));
      const expectedDates = Array.from({ length: 7 }, (_, i) =>
        DateTime.fromISO(change.date, { zone })
          .plus({ days: i - 3 })
          .toISODate(),
      );
      expect(occ.map((d) => local(d, zone).toISODate())).toEqual(expectedDates);
      // Exactly one spacing differs from 24 hours: the night of the change.
      const gaps = spacings(occ);
      const odd = gaps.filter((g) => g !== 24 * HOUR);
      expect(odd).toEqual([change === spring ? 23 * HOUR : 25 * HOUR]);
    });
  });
});
