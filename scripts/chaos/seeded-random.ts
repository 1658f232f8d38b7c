/**
 * The chaos run's randomness, from one seed (`--seed`), so a failing run can
 * be replayed: the same fault plan (when, what, which process by its rank
 * among the live ones) and the same load. Timing on a loaded machine still
 * varies between two runs of one seed; what a run chose does not.
 *
 * mulberry32: small, fast and good enough to pick faults; not for secrets.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** A whole number from `min` to `max`, both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A number from `min` to `max`. */
  between(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /**
   * An independent stream named `label`: the load and the faults draw from
   * streams of their own, so a change in how much one draws leaves the
   * other's choices as they were.
   */
  fork(label: string): SeededRandom {
    let hash = this.state ^ 0x9e3779b9;
    for (const char of label) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
    return new SeededRandom(hash >>> 0);
  }
}
