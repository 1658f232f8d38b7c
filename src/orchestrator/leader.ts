/**
 * Leadership through a lease row (see docs/leadership.md):
 *
 *   standby ──acquire (row free or expired; epoch + 1)──▶ leader
 *   leader  ──renew every ttl/3 (holder and epoch match)──▶ leader
 *   leader  ──renew refused, or failed until the lease ran out──▶ standby
 *   leader  ──release on stop (expires now)──▶ standby takes over at its next try
 *
 * Not a session advisory lock: every step is one short statement, so it
 * works through PgBouncer in transaction mode, and a leader that loses its
 * connection cannot keep leadership past the lease's expiry. Work done as
 * leader is fenced on (holder, epoch) in the statements that write it.
 */

import type { Database } from "../db/database.js";
import { leaseQueries } from "../db/queries/leases.js";
import type { RotaEvents } from "../events.js";

export interface LeaseState {
  name: string;
  holder: string;
  epoch: number;
  acquiredAt: Date;
  expiresAt: Date;
  valid: boolean;
}

export class LeaderLease {
  private epochHeld: number | null = null;
  /** When this process last knew the lease valid, by its own clock (renewals may fail). */
  private validUntil = 0;

  constructor(
    /** The orchestrator's connections (made when first needed, see Orchestrator). */
    private readonly db: () => Database,
    private readonly events: RotaEvents,
    readonly name: string,
    readonly holder: string,
    readonly ttlMs: number,
  ) {}

  get isLeader(): boolean {
    return this.epochHeld !== null && performance.now() < this.validUntil;
  }

  /** The epoch this holder leads in, or null. */
  get epoch(): number | null {
    return this.isLeader ? this.epochHeld : null;
  }

  /**
   * Takes the lease if it is free or expired, or renews it if held; returns
   * whether this holder leads now. A failed statement is thrown; leadership
   * then lasts only until the last known expiry.
   */
  async acquireOrRenew(): Promise<boolean> {
    const started = performance.now();
    const db = this.db();
    const q = leaseQueries(db.schema);
    if (this.epochHeld !== null) {
      const renewed = await db.run(q.Renew, {
        name: this.name,
        holder: this.holder,
        epoch: this.epochHeld,
        ttlMs: this.ttlMs,
      });
      if (renewed.rowCount === 1) {
        this.validUntil = started + this.ttlMs;
        return true;
      }
      this.lose("the lease was taken over or expired before it was renewed");
    }
    const acquired = await db.run(q.Acquire, {
      name: this.name,
      holder: this.holder,
      ttlMs: this.ttlMs,
    });
    const row = acquired.rows[0];
    if (!row) return false;
    this.epochHeld = Number(row.epoch);
    this.validUntil = started + this.ttlMs;
    this.events.emit("leader:acquired", {
      lease: this.name,
      holder: this.holder,
      epoch: this.epochHeld,
    });
    return true;
  }

  /**
   * Renews the lease if a third of its TTL has passed since the last renewal
   * (long steps call this between batches); returns whether this holder still
   * leads. A failed renewal keeps leadership only until the known expiry.
   */
  async keep(): Promise<boolean> {
    if (this.epochHeld === null) return false;
    if (this.validUntil - performance.now() > (2 * this.ttlMs) / 3) return this.isLeader;
    try {
      return await this.acquireOrRenew();
    } catch {
      return this.isLeader;
    }
  }

  /** Called when leadership cannot be confirmed (renewal failing past the expiry). */
  lose(reason: string): void {
    if (this.epochHeld === null) return;
    const epoch = this.epochHeld;
    this.epochHeld = null;
    this.validUntil = 0;
    this.events.emit("leader:lost", { lease: this.name, holder: this.holder, epoch, reason });
  }

  /** Gives the lease up so a standby can take over at once. */
  async release(): Promise<void> {
    if (this.epochHeld === null) return;
    const epoch = this.epochHeld;
    try {
      const db = this.db();
      await db.run(leaseQueries(db.schema).Release, {
        name: this.name,
        holder: this.holder,
        epoch,
      });
    } finally {
      this.lose("released on stop");
    }
  }
}

/** Who holds a lease now (for `rota doctor` and tests). */
export async function readLease(db: Database, name: string): Promise<LeaseState | null> {
  const result = await db.run(leaseQueries(db.schema).Get, { name });
  const row = result.rows[0];
  if (!row) return null;
  return {
    name: row.name,
    holder: row.holder,
    epoch: Number(row.epoch),
    acquiredAt: row.acquired_at,
    expiresAt: row.expires_at,
    valid: row.valid,
  };
}
