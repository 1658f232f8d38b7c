import { expect } from "vitest";
import { silentLogger } from "../../src/logger.js";
import type { TestSchema } from "./database.js";
import { nextEvent } from "./events.js";

/**
 * The hand-over of a schedule imported from another scheduler, checked
 * against that scheduler's own grid (`peerNext(after, count)`: its next
 * `count` occurrences strictly after `after`, in ms): while the peer owns it
 * rota fires nothing (no double fire); once handed over, rota plans exactly
 * the peer's next occurrences and runs the first when the database clock
 * reaches it (no gap); handed back, rota plans nothing again.
 */
export async function expectHandoverAtPeersNext(
  t: TestSchema,
  schedule: { name: string; task: string },
  peerNext: (after: Date, count: number) => number[],
): Promise<void> {
  const fired: number[] = [];
  const worker = t.rota.worker({
    logger: silentLogger,
    rescueIntervalMs: 0,
    tasks: {
      [schedule.task]: async (_payload, ctx) => {
        fired.push((ctx.job.occurrenceAt as Date).getTime());
      },
    },
  });
  const orchestrator = t.rota.orchestrator({ holder: "handover", leaseTtlMs: 3_600_000 });
  await worker.start();
  try {
    // Two hours under the other scheduler: rota fires nothing of it.
    for (let i = 0; i < 4; i++) {
      await t.rota.clock.shift(30 * 60_000);
      await orchestrator.tick();
    }
    expect(fired).toEqual([]);

    const handedAt = await t.rota.clock.now();
    expect(await t.rota.schedules.handover({ names: [schedule.name] })).toEqual([
      { name: schedule.name, from: "external", to: "rota" },
    ]);
    await orchestrator.tick();
    // The peer fired everything up to `handedAt`; rota plans what comes after.
    const grid = peerNext(handedAt, 3);
    const planned = await t.rota.schedules.upcoming(schedule.name, { limit: 3 });
    expect(planned.map((r) => r.runAt.getTime())).toEqual(grid);

    // The clock lands just past the occurrence, as a live one would (a
    // catch-up of "none" would record an execution claimed later missed).
    const ran = nextEvent(t.rota.events, "job:run:success");
    await t.rota.clock.shift((grid[0] as number) - handedAt.getTime() + 1_000);
    await ran;
    expect(fired).toEqual([grid[0]]);

    await t.rota.schedules.handover({ names: [schedule.name], to: "external" });
    await orchestrator.tick();
    expect(await t.rota.schedules.upcoming(schedule.name)).toEqual([]);
  } finally {
    await worker.stop();
    await orchestrator.stop();
  }
}
