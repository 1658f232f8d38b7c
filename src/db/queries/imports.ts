import { defineQueries, statement } from "../sql.js";

/** Reads of another scheduler's tables, from imports.sql (see src/schedule/import-pg-boss.ts). */
export const importQueries = defineQueries("imports", {
  PgBossTables: statement<
    { schedule: string; queue: string },
    { schedule: boolean; queue: boolean }
  >(),
  PgBossSchedules: statement<
    Record<never, never>,
    { schedule: Record<string, unknown>; queue_retry_limit: number | null }
  >(),
});
