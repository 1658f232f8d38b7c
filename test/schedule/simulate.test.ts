import { describe, expect, it } from "vitest";
import { simulationSvg } from "../../src/cli/simulation-chart.js";
import { isRotaError } from "../../src/errors.js";
import { defineDistribution, placeKeys, seedOf } from "../../src/schedule/distribution.js";
import {
  MAX_SIMULATED_EXECUTIONS,
  type SimulatedSchedule,
  type Simulation,
  simulate,
} from "../../src/schedule/simulate.js";
import {
  generatedTargetKeys,
  parseSimulationFile,
  type SimulationEntry,
} from "../../src/schedule/simulation-file.js";
import { compileSpec, specOf } from "../../src/schedule/spec.js";

/**
 * rota simulate's arithmetic, without a database: the herd a schedule
 * without a window makes, how random, spread and batches flatten it, and
 * that the counts are what the planning code places (the equality with the
 * orchestrator's rows is test/schedule/simulate-equals-orchestrator.test.ts).
 */

const at = (iso: string) => new Date(iso);
const range = { from: at("2026-03-02T08:30:00Z"), to: at("2026-03-02T10:30:00Z") };

function schedules(...entries: SimulationEntry[]): SimulatedSchedule[] {
  return parseSimulationFile(entries, "test.json");
}

function daily(name: string, extra: Partial<SimulationEntry>): SimulationEntry {
  return { name, task: "scan", cron: "0 9 * * *", targets: 10_000, ...extra };
}

const sum = (counts: readonly number[]) => counts.reduce((a, b) => a + b, 0);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isRotaError(error)) return error.code;
    throw error;
  }
  throw new Error("expected a RotaError");
}

describe("simulate: the herd and the strategies that flatten it", () => {
  it("without a window, every target runs in the minute of the occurrence", () => {
    const result = simulate(schedules(daily("herd", {})), range);
    expect(result.perMinute).toHaveLength(120);
    expect(result.peak).toBe(10_000);
    expect(result.peakMinute).toEqual(at("2026-03-02T09:00:00Z"));
    expect(result.perMinute.filter((n) => n > 0)).toEqual([10_000]);
    expect(result.schedules[0]).toMatchObject({ name: "herd", executions: 10_000, peak: 10_000 });
  });

  it("random and spread over a 1h window: the same executions, a peak far lower", () => {
    const result = simulate(
      schedules(
        daily("random", { window: "1h", distribution: "random", seed: 42 }),
        daily("spread", { window: "1h", distribution: "spread" }),
      ),
      range,
    );
    const [random, spread] = result.schedules as [
      Simulation["schedules"][0],
      Simulation["schedules"][0],
    ];
    for (const load of [random, spread]) {
      expect(load.executions).toBe(10_000);
      expect(sum(load.perMinute)).toBe(10_000);
      // Only 09:00-09:59 has runs: 60 minutes of the 120.
      expect(load.perMinute.slice(0, 30).every((n) => n === 0)).toBe(true);
      expect(load.perMinute.slice(90).every((n) => n === 0)).toBe(true);
    }
    // 10,000 over 60 minutes is 166.7 a minute: spread is exactly that, to one.
    expect(spread.peak).toBe(167);
    expect(Math.min(...spread.perMinute.slice(30, 90))).toBe(166);
    // Random draws: within a few standard deviations (about 13) of the mean.
    expect(random.peak).toBeGreaterThan(167);
    expect(random.peak).toBeLessThan(250);
    expect(result.peak).toBeLessThan(10_000 / 25);
  });

  it("batches: never more than K in a slot, in ceil(N / K) slots", () => {
    const result = simulate(
      schedules(daily("batches", { window: "1h", distribution: "batches:500/2m" })),
      range,
    );
    const counts = result.schedules[0]?.perMinute ?? [];
    expect(Math.max(...counts)).toBe(500);
    expect(counts.filter((n) => n > 0)).toHaveLength(10_000 / 500);
    // A slot every 2 minutes from 09:00: the odd minutes are empty.
    expect(
      counts
        .slice(30, 110)
        .filter((_, i) => i % 2 === 1)
        .every((n) => n === 0),
    ).toBe(true);
    expect(sum(counts)).toBe(10_000);
  });

  it("batches that cannot fit the window: DISTRIBUTION_OVERFLOW naming the schedule", () => {
    const input = schedules(daily("tight", { window: "10m", distribution: "batches:100/1m" }));
    expect(codeOf(() => simulate(input, range))).toBe("DISTRIBUTION_OVERFLOW");
    expect(() => simulate(input, range)).toThrow(/Schedule "tight"/);
  });

  it("a schedule without targets runs its own grid at each occurrence, its window unused", () => {
    const result = simulate(
      schedules({ name: "own", task: "t", every: "15m", window: "1h", distribution: "spread" }),
      range,
    );
    const counts = result.schedules[0]?.perMinute ?? [];
    // 08:30, 08:45, … 10:15: eight occurrences, one each, on the quarter hours.
    expect(sum(counts)).toBe(8);
    expect(counts.every((n, m) => n === (m % 15 === 0 ? 1 : 0))).toBe(true);
  });

  it("counts runs of occurrences before the range whose window reaches into it", () => {
    // Hourly, spread over the hour: from 09:30, the 09:00 cadence's second half counts.
    const input = schedules({
      name: "hourly",
      task: "t",
      cron: "0 * * * *",
      window: "1h",
      distribution: "spread",
      targets: 600,
    });
    const result = simulate(input, {
      from: at("2026-03-02T09:30:00Z"),
      to: at("2026-03-02T10:00:00Z"),
    });
    expect(result.perMinute).toEqual(new Array(30).fill(10));
  });

  it("caps the window at the gap to the next occurrence", () => {
    const input = schedules({
      name: "every-20m",
      task: "t",
      every: "20m",
      window: "50m",
      distribution: "spread",
      targets: 200,
    });
    const result = simulate(input, {
      from: at("2026-03-02T09:00:00Z"),
      to: at("2026-03-02T10:00:00Z"),
    });
    // Three cadences, each spread over 20 minutes, not 50: ten a minute, every minute.
    expect(result.perMinute).toEqual(new Array(60).fill(10));
  });

  it("agrees with placeKeys, cadence by cadence", () => {
    const input = schedules({
      name: "quarter",
      task: "t",
      cron: "*/15 * * * *",
      window: "40m",
      distribution: "random",
      targets: ["b", "a", "c", "project-9", "project-10", "ü"],
    });
    const from = at("2026-03-02T09:00:00Z");
    const to = at("2026-03-02T11:00:00Z");
    const result = simulate(input, { from, to });
    const { schedule, targets } = input[0] as SimulatedSchedule;
    const grid = compileSpec(specOf(schedule));
    const expected = new Array<number>(120).fill(0);
    for (
      let occ = grid.next(new Date(from.getTime() - 40 * 60_000));
      occ !== null && occ < to;
      occ = grid.next(occ)
    ) {
      const placed = placeKeys(
        { name: schedule.distribution, batchSize: null, batchEveryMs: null },
        {
          occurrence: occ,
          next: grid.next(occ),
          windowMs: schedule.windowMs,
          seed: seedOf(schedule),
        },
        targets ?? [],
      );
      for (const { offsetMs } of placed) {
        const minute = Math.floor((occ.getTime() + offsetMs - from.getTime()) / 60_000);
        if (minute >= 0 && minute < 120) expected[minute] = (expected[minute] as number) + 1;
      }
    }
    expect(result.perMinute).toEqual(expected);
    expect(sum(result.perMinute)).toBeGreaterThan(0);
  });

  it("the total per minute is the sum of the schedules", () => {
    const result = simulate(
      schedules(daily("herd", {}), daily("spread", { window: "1h", distribution: "spread" })),
      range,
    );
    expect(result.perMinute[30]).toBe(10_000 + 167);
    expect(result.peak).toBe(10_167);
    expect(sum(result.perMinute)).toBe(20_000);
  });
});

describe("simulate: limits and custom strategies", () => {
  it("refuses a range that is empty, not on whole minutes, or longer than 31 days", () => {
    const input = schedules(daily("herd", {}));
    const sim = (from: string, to: string) => () => simulate(input, { from: at(from), to: at(to) });
    expect(codeOf(sim("2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"))).toBe("INVALID_OPTION");
    expect(codeOf(sim("2026-03-02T10:00:30Z", "2026-03-02T11:00:00Z"))).toBe("INVALID_OPTION");
    expect(codeOf(sim("2026-03-01T00:00:00Z", "2026-04-01T00:01:00Z"))).toBe(
      "SIMULATION_TOO_LARGE",
    );
    expect(
      simulate(input, { from: at("2026-03-01T00:00:00Z"), to: at("2026-04-01T00:00:00Z") }).peak,
    ).toBe(10_000);
  });

  it(`refuses more than ${MAX_SIMULATED_EXECUTIONS} executions before placing any`, () => {
    const input = schedules({ name: "busy", task: "t", cron: "* * * * *", targets: 10_000 });
    const started = Date.now();
    expect(
      codeOf(() =>
        simulate(input, { from: at("2026-03-01T00:00:00Z"), to: at("2026-03-02T00:00:00Z") }),
      ),
    ).toBe("SIMULATION_TOO_LARGE");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a custom strategy not registered: DISTRIBUTION_NOT_REGISTERED, saying the CLI cannot register it", () => {
    const input = schedules(daily("custom", { window: "1h", distribution: "simulate-unknown" }));
    expect(codeOf(() => simulate(input, range))).toBe("DISTRIBUTION_NOT_REGISTERED");
    expect(() => simulate(input, range)).toThrow(/rota simulate cannot register/);
  });

  it("a custom strategy registered in the process is placed by it", () => {
    defineDistribution("simulate-at-ten", () => 10 * 60_000);
    const result = simulate(
      schedules(daily("custom", { window: "1h", distribution: "simulate-at-ten", targets: 50 })),
      range,
    );
    expect(result.peakMinute).toEqual(at("2026-03-02T09:10:00Z"));
    expect(result.peak).toBe(50);
  });
});

describe("simulation file", () => {
  it('a count N stands for keys "target-1" … "target-N"; a key given twice is one target', () => {
    const [counted, listed] = schedules(
      daily("counted", { targets: 3 }),
      daily("listed", { targets: ["a", "b", "a"] }),
    );
    expect(counted?.targets).toEqual(["target-1", "target-2", "target-3"]);
    expect(generatedTargetKeys(2)).toEqual(["target-1", "target-2"]);
    expect(listed?.targets).toEqual(["a", "b"]);
  });

  it("a bad entry: its own code, and a message naming the entry", () => {
    const bad = (entries: unknown, code: string, message: RegExp) => {
      expect(codeOf(() => parseSimulationFile(entries, "s.json"))).toBe(code);
      expect(() => parseSimulationFile(entries, "s.json")).toThrow(message);
    };
    bad(
      [daily("ok", {}), daily("broken", { cron: "61 * * * *" })],
      "INVALID_CRON",
      /s\.json entry 2 \("broken"\)/,
    );
    bad([daily("a<script>", {})], "INVALID_SCHEDULE_NAME", /entry 1/);
    bad(
      [daily("w", { windw: "1h" } as Partial<SimulationEntry>)],
      "INVALID_OPTION",
      /unknown "windw"; did you mean "window"/,
    );
    bad([daily("zero", { targets: 0 })], "INVALID_OPTION", /targets must be a whole number/);
    bad([daily("empty", { targets: [] })], "INVALID_TARGET", /leave targets out/);
    bad([daily("nul", { targets: ["a\u0000"] })], "INVALID_TARGET", /bytes of text without NUL/);
    bad([daily("dup", {}), daily("dup", {})], "INVALID_OPTION", /more than once/);
    bad(
      [{ name: "src", task: "t", cron: "0 9 * * *", targetSource: "select 'a' as key" }],
      "INVALID_OPTION",
      /give "targets"/,
    );
    bad({ name: "not-an-array" }, "INVALID_OPTION", /JSON array/);
    bad([], "INVALID_OPTION", /JSON array/);
  });
});

describe("the chart", () => {
  it("escapes schedule names: a name is never markup", () => {
    // The file's names are checked before they get here (no "<" passes),
    // but the chart does not count on it.
    const result = simulate(schedules(daily("herd", {})), range);
    const named: Simulation = {
      ...result,
      schedules: result.schedules.map((s) => ({ ...s, name: `<script>alert("x")</script>&'` })),
    };
    const svg = simulationSvg(named);
    expect(svg).not.toContain("<script");
    expect(svg).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;");
  });
});
