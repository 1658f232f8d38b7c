import { defineQueries, type NoParams, statement } from "../sql.js";

/** One table of a schema as TableHealth reads it (counts are estimates, see vacuum.sql). */
export interface TableHealthRow {
  table_name: string;
  live_tuples: number;
  dead_tuples: number;
  total_bytes: number;
  index_bytes: number;
  autovacuum_count: number;
  vacuum_count: number;
  /** The latest vacuum, manual or automatic; null when it never had one. */
  last_vacuum_at: Date | null;
  since_vacuum_ms: number | null;
  /** False when the table's storage parameter autovacuum_enabled turns it off. */
  autovacuum_enabled: boolean;
  /** The dead rows at which autovacuum takes the table up. */
  vacuum_trigger: number;
}

/** A client transaction open longer than asked, as OldTransactions reads it. */
export interface OldTransactionRow {
  pid: number;
  user_name: string | null;
  application_name: string | null;
  /** "active", "idle in transaction", "idle in transaction (aborted)", … */
  state: string | null;
  xact_start: Date;
  age_ms: number;
  /** It holds a transaction id or a snapshot: vacuum cannot remove rows that died since. */
  holds_xmin: boolean;
  query: string | null;
}

export interface XminHolderRow {
  kind: "replication slot" | "prepared transaction";
  name: string;
  /** How many transactions ago its xmin was. */
  xid_age: number;
  /** A prepared transaction's time since PREPARE; null for a slot. */
  age_ms: number | null;
}

/** What vacuum has left and what holds it back, from vacuum.sql. */
export const vacuumQueries = defineQueries("vacuum", {
  Autovacuum: statement<
    NoParams,
    { autovacuum: boolean; track_counts: boolean; source_file: string | null }
  >(),
  TableHealth: statement<{ schema: string }, TableHealthRow>(),
  OldTransactions: statement<{ olderThanMs: number }, OldTransactionRow>(),
  XminHolders: statement<{ olderThanMs: number }, XminHolderRow>(),
});
