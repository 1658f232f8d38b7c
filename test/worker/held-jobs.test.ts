// HeldJobs alone, without a database: the rule it keeps (one attempt of a job
// at a time, never more than `concurrency` running) and what it hands the
// claim and the heartbeat.
import { describe, expect, it } from "vitest";
import { Attempt } from "../../src/worker/attempt.js";
import { type ClaimedRow, HeldJobs } from "../../src/worker/held-jobs.js";

function row(id: string, attempts = 1): ClaimedRow {
  const at = new Date(0);
  return {
    id,
    state: "running",
    queue: "q",
    task: "t",
    payload: {},
    priority: 0,
    run_at: at,
    attempts,
    max_attempts: 3,
    backoff: null,
    timeout_ms: null,
    created_at: at,
    lease_expires_at: null,
    unique_key: null,
    schedule_id: null,
    target_key: null,
    occurrence_at: null,
    started_at: null,
    claimed_at: at,
    limited: false,
  };
}

/** Starts the next buffered job, as the worker does. */
function startNext(held: HeldJobs): Attempt | undefined {
  const next = held.nextToStart();
  if (next === undefined) return undefined;
  const attempt = new Attempt(next, { name: "t", handler: async () => {} });
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
});
