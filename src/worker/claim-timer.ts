/**
 * When an idle or busy worker claims next without being woken: after a poll
 * interval, or sooner when a scheduled job is known to come due before that
 * (a busy worker's polls must not push a planned execution's start back by a
 * poll interval). Times are performance.now() times of this process; when a
 * job is due is learnt from the database (NextDue) or from a wake-up that
 * says so ("<queue> +<ms>").
 */
export class ClaimTimer {
  private timer: NodeJS.Timeout | null = null;
  /** When the timer fires, while it is set. */
  private firesAt: number | null = null;
  /** When the next scheduled job is due, as last learnt. */
  private nextDueAt: number | null = null;

  constructor(private readonly fire: () => void) {}

  /** Fires after `ms`, or when the next known job is due if that is sooner; replaces the timer set before. */
  set(ms: number): void {
    if (this.nextDueAt !== null) {
      const dueIn = this.nextDueAt - performance.now();
      if (dueIn <= 0) this.nextDueAt = null;
      else ms = Math.min(ms, Math.ceil(dueIn));
    }
    this.clear();
    this.firesAt = performance.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.firesAt = null;
      this.fire();
    }, ms);
    this.timer.unref();
  }

  /** Milliseconds until the timer fires, or null when none is set. */
  remaining(): number | null {
    return this.firesAt === null ? null : this.firesAt - performance.now();
  }

  /**
   * Remembers that a job comes due at `at`, unless an earlier time still to
   * come is known: NextDue may have been read just before a wake-up announced
   * an earlier job, and must not push it back.
   */
  noteDueAt(at: number): void {
    const known = this.nextDueAt;
    if (known === null || known <= performance.now() || at < known) this.nextDueAt = at;
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.firesAt = null;
  }
}
