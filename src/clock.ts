import type { Database } from "./db/database.js";
import { clockQueries } from "./db/queries/clock.js";
import type { RowOf } from "./db/sql.js";

/**
 * The process-side clock. rota decides "is it due?" in SQL only
 * ({{schema}}.clock_now()); this clock serves what must happen in the process:
 * timers, timestamps on events, pure schedule maths given a starting time.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that moves only when told to, for tests of process-side logic. */
export class ManualClock implements Clock {
  private current: number;
  constructor(start: Date | number = 0) {
    this.current = typeof start === "number" ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): Date {
    this.current += ms;
    return this.now();
  }
  set(to: Date): void {
    this.current = to.getTime();
  }
}

/** The database clock of one rota schema: read it, shift it, reset it. */
export class DatabaseClock {
  private readonly q;
  constructor(private readonly db: Database) {
    this.q = clockQueries(db.schema);
  }

  async now(): Promise<Date> {
    const result = await this.db.run(this.q.Now);
    return (result.rows[0] as RowOf<typeof this.q.Now>).now;
  }

  /** Moves the schema's clock by `ms` for every connection; returns the new time. */
  async shift(ms: number): Promise<Date> {
    await this.db.run(this.q.ShiftBy, { ms });
    return this.now();
  }

  async reset(): Promise<Date> {
    await this.db.run(this.q.Reset);
    return this.now();
  }
}
