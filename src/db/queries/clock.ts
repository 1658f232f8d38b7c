import { defineQueries, type NoParams, statement } from "../sql.js";

/** The database clock of a schema (see migrations/0001_clock.sql), from clock.sql. */
export const clockQueries = defineQueries("clock", {
  Now: statement<NoParams, { now: Date }>(),
  ShiftBy: statement<{ ms: number }>(),
  Reset: statement(),
});
