import { defineQueries, statement } from "../sql.js";

/** A sweep as List reports it. */
export interface SweepRow {
  name: string;
  queue: string;
  max_running: number;
  cron: string | null;
  last_kicked_at: Date | null;
  paused: boolean;
  running: number;
  waiting: number;
}

/** Every statement on the sweeps table, from sweeps.sql, bound per schema. */
export const sweepQueries = defineQueries("sweeps", {
  Upsert: statement<
    { name: string; queue: string; maxRunning: number; cron: string | null },
    { carried: number }
  >(),
  TopUp: statement<{ name: string; runningInstance: string | null }, { added: number | null }>(),
  List: statement<{ name: string | null }, SweepRow>(),
});
