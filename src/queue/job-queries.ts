/**
 * TEMPORARY: src/worker/ still imports the jobs statements from here. The
 * statements live in src/db/queries/jobs.ts; remove this file once the
 * worker imports them from there.
 */
export { jobQueries } from "../db/queries/jobs.js";
