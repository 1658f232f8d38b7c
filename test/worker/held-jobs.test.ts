// HeldJobs alone, without a database: the rule it keeps (one attempt of a job
// at a time, never more than `concurrency` running) and what it hands the
// claim and the heartbeat.
import { describe, expect, it } from "vitest";
import { Attempt } from "../../src/worker/attempt.js";
import { type ClaimedRow, HeldJobs } from "../../src/worker/held-jobs.js";

function row(id: string, attempts = 1, task = "t"): ClaimedRow {
  const at = new Date(0);
  return {
    id,
    state: "running",
    queue: "q",
    task,
    payload: {},
    priority: 0,
    run_at: at,
    attempts,
    max_attempts: 3,
    backoff: null,
    timeout_ms: null,
    created_at: at,
    unique_key: null,
    schedule_id: null,
    target_key: null,
    occurrence_at: null,
    started_at: null,
    claimed_at: at,
    limited: false,
    trace_context: null,
  };
}

/** Starts the next buffered job, as the worker does. */
function startNext(held: HeldJobs): Attempt | undefined {
  const next = held.nextToStart();
  if (next === undefined) return undefined;
  expect(next).toHaveLength(1);
  const attempt = new Attempt(next[0] as ClaimedRow, { name: "t", handler: async () => {} });
  held.started(attempt);
  return attempt;
}

describe("HeldJobs", () => {
  it("starts no more than the concurrency, and frees a slot only when the handler returns", () => {
    const held = new HeldJobs(2);
    held.take([row("1"), row("2"), row("3")]);
    const first = startNext(held) as Attempt;
    startNext(held);
    expect(startNext(held)).toBeUndefined();
    expect(held.runningCount).toBe(2);
    // Its outcome recorded early (a timeout) does not free the slot.
    first.settled = true;
    held.completingNow("1", 1);
    expect(startNext(held)).toBeUndefined();
    held.finished(first);
    expect(startNext(held)?.row.id).toBe("3");
    expect(held.count).toBe(3); // 2 and 3 running, 1 completing
  });

  it("never starts a second attempt of a job whose earlier attempt still runs", () => {
    const held = new HeldJobs(4);
    held.take([row("1", 1)]);
    const first = startNext(held) as Attempt;
    held.take([row("1", 2), row("2")]);
    // The retry waits; the other job starts.
    expect(startNext(held)?.row.id).toBe("2");
    expect(startNext(held)).toBeUndefined();
    held.finished(first);
    expect(startNext(held)?.row.attempts).toBe(2);
  });

  it("passes over jobs running or completing here, and claims none of them by id", () => {
    const held = new HeldJobs(4);
    held.take([row("1"), row("2")]);
    startNext(held);
    held.completingNow("9", 1);
    expect(held.passOver().sort()).toEqual(["1", "9"]);
    expect(held.mayClaimById("1")).toBe(false);
    expect(held.mayClaimById("9")).toBe(false);
    expect(held.mayClaimById("2")).toBe(true);
  });

  it("a job claimed again replaces its buffered copy, but not a copy that started", () => {
    const held = new HeldJobs(1);
    held.take([row("1"), row("2")]);
    held.take([row("2")]);
    expect(held.buffered).toBe(2);
    const running = startNext(held) as Attempt;
    held.take([row("1")]);
    // The same attempt running here keeps the job.
    expect(held.buffered).toBe(1);
    expect(running.row.id).toBe("1");
  });

  it("renews buffered, running and completing leases, and loses only what it still holds", () => {
    const held = new HeldJobs(2);
    held.take([row("1"), row("2"), row("3")]);
    const one = startNext(held) as Attempt;
    startNext(held);
    held.completingNow("7", 2);
    expect(held.leasesToRenew()).toEqual({ ids: ["3", "1", "2", "7"], attempts: [1, 1, 1, 2] });
    // Completing: its outcome shows it ran; not lost.
    expect(held.loseLease("7", 2).lost).toBe(false);
    // A buffered copy is dropped.
    expect(held.loseLease("3", 1)).toEqual({ lost: true, running: undefined });
    expect(held.buffered).toBe(0);
    // A running one is marked, and the worker aborts it.
    expect(held.loseLease("1", 1)).toEqual({ lost: true, running: one });
    expect(one.leaseLost).toBe(true);
    expect(held.leasesToRenew().ids).toEqual(["2", "7"]);
    // Another attempt of the job is not this one.
    expect(held.loseLease("2", 5).lost).toBe(false);
  });

  describe("batch tasks", () => {
    /** HeldJobs with batch task "b" (size 3, wait 100 ms) and a clock the test moves. */
    function batchHeld(concurrency = 1) {
      const clock = { now: 1_000 };
      const held = new HeldJobs(
        concurrency,
        (task) => (task === "b" ? { size: 3, waitMs: 100 } : undefined),
        () => clock.now,
      );
      return { held, clock };
    }
    const ids = (rows: ClaimedRow[] | undefined) => rows?.map((r) => r.id);
    const attemptsOf = (rows: ClaimedRow[]) =>
      rows.map((r) => new Attempt(r, { name: r.task, handler: async () => {} }));

    it("a full batch starts at once, in one slot, and takes no more than its size", () => {
      const { held } = batchHeld();
      held.take(["1", "2", "3", "4"].map((id) => row(id, 1, "b")));
      const batch = held.nextToStart() as ClaimedRow[];
      expect(ids(batch)).toEqual(["1", "2", "3"]);
      held.started(...attemptsOf(batch));
      expect(held.runningCount).toBe(3);
      expect(held.freeSlots).toBe(0);
      expect(held.nextToStart()).toBeUndefined();
    });

    it("a partial batch waits its waitMs from its first job's claim, while other tasks start past it", () => {
      const { held, clock } = batchHeld(2);
      held.take([row("1", 1, "b")]);
      clock.now += 40;
      held.take([row("2", 1, "b"), row("s", 1, "t")]);
      expect(held.batchDueInMs()).toBe(60);
      const single = held.nextToStart() as ClaimedRow[];
      expect(ids(single)).toEqual(["s"]);
      held.started(...attemptsOf(single));
      expect(held.nextToStart()).toBeUndefined();
      clock.now += 60;
      expect(held.batchDueInMs()).toBe(0);
      expect(ids(held.nextToStart())).toEqual(["1", "2"]);
      expect(held.batchDueInMs()).toBeNull();
    });

    it("a batch passes over a job whose earlier attempt still runs here, and frees one slot when its call returns", () => {
      const { held, clock } = batchHeld(2);
      held.take([row("1", 1, "b")]);
      clock.now += 100;
      const first = attemptsOf(held.nextToStart() as ClaimedRow[]);
      held.started(...first);
      // Rescued and claimed again while its first attempt still runs.
      held.take([row("1", 2, "b"), row("2", 1, "b"), row("3", 1, "b")]);
      clock.now += 100;
      const second = held.nextToStart() as ClaimedRow[];
      expect(ids(second)).toEqual(["2", "3"]);
      held.started(...attemptsOf(second));
      expect(held.freeSlots).toBe(0);
      held.finished(...first);
      expect(held.freeSlots).toBe(1);
      expect(ids(held.nextToStart())).toEqual(["1"]);
    });
  });
});
