// Outcomes the completer writes: tried again while the database cannot take
// them for a passing reason, given up on when it refuses them for good, and a
// cancel that reaches a job still in the buffer.
import { describe, expect, it } from "vitest";
import { type TestSchema, withClient } from "../helpers/database.js";
import { deferred } from "../helpers/events.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker, busyWorker, claimed, finalState } = useWorkerHarness((schema) => {
  t = schema;
});

describe("outcomes written again", () => {
  it("a passing refusal (a lock timeout) is tried again until written, never given up on", async () => {
    const s = `"${t.schema}"`;
    const { id } = await t.rota.enqueue("passing", {}, { queue: "passing", maxAttempts: 1 });
    await withClient((c) =>
      c.query(`
        create table ${s}.refusing (on_ boolean);
        insert into ${s}.refusing values (true);
        create function ${s}.refuse_for_now() returns trigger language plpgsql as $$
        begin
          if new.id = ${id} and new.state <> 'running' and exists (select 1 from ${s}.refusing) then
            raise exception 'lock timeout, as it were' using errcode = '55P03';
          end if;
          return new;
        end $$;
        create trigger refuse_for_now before update on ${s}.jobs
          for each row execute function ${s}.refuse_for_now();`),
    );
    const codes: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => {
      codes.push((e.error as { code?: string }).code ?? "?");
    });
    try {
      await startWorker({
        queues: ["passing"],
        retention: { succeededMs: 3_600_000 },
        tasks: { passing: async () => {} },
      });
      // More tries than a refusal gets before it is given up on.
      await expect.poll(() => codes.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
      await withClient((c) => c.query(`delete from ${s}.refusing`));
      await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("succeeded");
      expect(codes).not.toContain("OUTCOME_NOT_WRITTEN");
    } finally {
      off();
      await withClient((c) =>
        c.query(`drop trigger refuse_for_now on ${s}.jobs; drop table ${s}.refusing`),
      );
    }
  });

  it("a cancel request the worker missed is written, and announced, as a cancel", async () => {
    const started = deferred();
    const release = deferred();
    const seen: string[] = [];
    const offs = [
      t.rota.events.on("job:cancelled", () => void seen.push("cancelled")),
      t.rota.events.on("job:run:retry", () => void seen.push("retry")),
      t.rota.events.on("job:failed", () => void seen.push("failed")),
    ];
    try {
      await startWorker({
        queues: ["missed.cancel"],
        leaseMs: 180_000,
        heartbeatMs: 60_000,
        tasks: {
          unaware: async () => {
            started.resolve();
            await release.promise;
            throw new Error("failed without hearing the cancel");
          },
        },
      });
      const { id } = await t.rota.enqueue("unaware", {}, { queue: "missed.cancel" });
      await started.promise;
      // A cancel request with no wake-up, as if its NOTIFY were lost.
      await withClient((c) =>
        c.query(`update "${t.schema}".jobs set cancel_requested_at = now() where id = $1`, [id]),
      );
      release.resolve();
      expect((await finalState(id, ["cancelled"]))?.state).toBe("cancelled");
      await expect.poll(() => seen).toEqual(["cancelled"]);
    } finally {
      for (const off of offs) off();
    }
  });
});

describe("cancel", () => {
  it("reaches a job still waiting in the worker's buffer: it never starts and ends cancelled", async () => {
    let victimRuns = 0;
    const { worker, release } = await busyWorker("cancel.buffer", {
      prefetch: 1,
      tasks: {
        victim: async () => {
          victimRuns++;
        },
      },
    });
    const victim = await t.rota.enqueue("victim", {}, { queue: "cancel.buffer" });
    await claimed(victim.id);
    await t.rota.cancel(victim.id);
    expect((await finalState(victim.id, ["cancelled"]))?.state).toBe("cancelled");
    release();
    // The slot frees and nothing else is buffered: the victim never ran.
    await expect.poll(() => worker.held).toBe(0);
    expect(victimRuns).toBe(0);
  });
});

describe("outcomes the database will not take", () => {
  it("are given up on after a few refusals, the rest are written, and stop() ends", async () => {
    const s = `"${t.schema}"`;
    const refused = await t.rota.enqueue("doomed", {}, { queue: "refused", maxAttempts: 1 });
    await withClient((c) =>
      c.query(`
        create function ${s}.refuse_outcome() returns trigger language plpgsql as $$
        begin
          if new.id = ${refused.id} and new.state <> 'running' then
            raise exception 'this outcome is refused';
          end if;
          return new;
        end $$;
        create trigger refuse_outcome before update on ${s}.jobs
          for each row execute function ${s}.refuse_outcome();`),
    );
    const errors: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => {
      const code = (e.error as { code?: string }).code;
      if (code) errors.push(code);
    });
    try {
      const worker = await startWorker({
        queues: ["refused"],
        tasks: {
          doomed: async () => {
            throw new Error("fails, and its failure cannot be written");
          },
          fine: async () => {
            throw new Error("fails, and is written");
          },
        },
      });
      const fine = await t.rota.enqueue("fine", {}, { queue: "refused", maxAttempts: 1 });
      expect((await finalState(fine.id))?.state).toBe("failed");
      await expect.poll(() => errors, { timeout: 10_000 }).toContain("OUTCOME_NOT_WRITTEN");
      // Left running, for a rescue once its lease expires.
      expect((await t.rota.getJob(refused.id))?.state).toBe("running");
      await expect.poll(() => worker.held).toBe(0);
      await worker.stop();
    } finally {
      off();
      await withClient((c) => c.query(`drop trigger refuse_outcome on ${s}.jobs`));
    }
  });
});
