import { defineQueries } from "../db/sql.js";

/** Every statement on the jobs table, from src/db/queries/jobs.sql, bound per schema. */
export const jobQueries = defineQueries("jobs", [
  "InsertPlain",
  "Insert",
  "QueuedByUniqueKey",
  "Claim",
  "NextDue",
  "CompleteByDelete",
  "CompleteByKeep",
  "Fail",
  "Heartbeat",
  "ExtendLease",
  "ReleaseUnstarted",
  "Rescue",
  "Cancel",
  "Replay",
  "Prune",
  "Get",
  "List",
]);
