import { defineQueries } from "../db/sql.js";

/** Every statement on the jobs table, from src/db/queries/jobs.sql, bound per schema. */
export const jobQueries = defineQueries("jobs", [
  "Claim",
  "ClaimOne",
  "NextDue",
  "CompleteByDelete",
  "CompleteByKeep",
  "Fail",
  "Heartbeat",
  "ExtendLease",
  "MarkStarted",
  "ReleaseUnstarted",
  "Rescue",
  "Cancel",
  "Replay",
  "PruneJobs",
  "PruneExecutions",
  "Get",
  "List",
]);

/** The statements that insert jobs, from src/db/queries/enqueue.sql. */
export const enqueueQueries = defineQueries("enqueue", [
  "InsertPlain",
  "Wake",
  "DrawIds",
  "DrawIdList",
  "CopyJobs",
  "Insert",
  "QueuedByUniqueKey",
]);
