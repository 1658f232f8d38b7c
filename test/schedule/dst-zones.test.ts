// Fixed-time cron jobs on every DST change day of 2026, in zones far from UTC
// and with odd offsets, against a reference computed independently with
// luxon: a local time that exists runs then (the first of two when repeated);
// one that does not exist runs at the moment the clocks change (ISC cron).
import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import { nextOccurrences } from "../../src/schedule/spec.js";

const ZONES = [
  "America/New_York",
  "America/Los_Angeles",
  "America/St_Johns",
  "Europe/Berlin",
  "Australia/Sydney",
  "Australia/Lord_Howe",
  "Pacific/Auckland",
  "Asia/Kolkata",
];

/** The instant ISC cron runs local h:m on this local day. */
function expected(day: DateTime, hour: number, minute: number, zone: string): number {
  const fields = { year: day.year, month: day.month, day: day.day, hour, minute };
  const local = DateTime.fromObject(fields, { zone });
  if (local.hour !== hour || local.minute !== minute) {
    // Skipped: find the change, scanning forward from well before it.
    let at = local.toMillis() - 4 * 3_600_000;
    const before = DateTime.fromMillis(at, { zone }).offset;
    while (DateTime.fromMillis(at, { zone }).offset === before) at += 1_000;
    return at;
  }
  // Repeated: the earliest instant showing this wall time.
  for (const back of [3_600_000, 1_800_000]) {
    const earlier = DateTime.fromMillis(local.toMillis() - back, { zone });
    if (earlier.hour === hour && earlier.minute === minute && earlier.day === day.day) {
      return local.toMillis() - back;
    }
  }
  return local.toMillis();
}

describe("fixed-time jobs on DST change days, far from UTC", () => {
  for (const zone of ZONES) {
    it(`${zone}: every hour at :00, :30 and :59 of each change day`, () => {
      let changeDays = 0;
      for (let d = 0; d < 365; d++) {
        const start = DateTime.fromObject({ year: 2026, month: 1, day: 1 }, { zone })
          .plus({ days: d })
          .startOf("day");
        if (start.offset === start.plus({ days: 1 }).offset) continue;
        changeDays++;
        for (let hour = 0; hour < 24; hour++) {
          for (const minute of [0, 30, 59]) {
            const [got] = nextOccurrences(
              { cron: `${minute} ${hour} * * *`, timezone: zone },
              start.minus({ seconds: 1 }).toJSDate(),
              1,
            );
            expect(got?.getTime(), `${start.toISODate()} ${hour}:${minute}`).toBe(
              expected(start, hour, minute, zone),
            );
          }
        }
      }
      // Kolkata has no DST; every other zone changes twice a year.
      expect(changeDays).toBe(zone === "Asia/Kolkata" ? 0 : 2);
    });
  }
});
