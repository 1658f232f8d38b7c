import { defineQueries, statement } from "../sql.js";

/** A lease row, and whether it is still valid by the database clock. */
export interface LeaseRow {
  name: string;
  holder: string;
  /** bigint: text from pg. */
  epoch: string;
  acquired_at: Date;
  expires_at: Date;
  valid: boolean;
}

type Holder = { name: string; holder: string };

/** Leader leases (see docs/leadership.md), from leases.sql. */
export const leaseQueries = defineQueries("leases", {
  Acquire: statement<Holder & { ttlMs: number }, Pick<LeaseRow, "epoch" | "expires_at">>(),
  Renew: statement<Holder & { epoch: number; ttlMs: number }, Pick<LeaseRow, "expires_at">>(),
  Release: statement<Holder & { epoch: number }, Pick<LeaseRow, "name">>(),
  Get: statement<{ name: string }, LeaseRow>(),
});
