/**
 * How many handler runs were under way at once, from their recorded
 * intervals: a sweep over the starts and ends, an end counted before a start
 * at the same instant (a slot freed and taken in one millisecond).
 */
export interface Interval {
  from: number;
  to: number;
}

export interface Concurrency {
  /** The most runs under way at once. */
  max: number;
  /** Starts that took the count past `limit`. */
  over: number;
  /** When the first of those happened (ms since the epoch), or null. */
  firstOverAt: number | null;
}

export function concurrency(intervals: readonly Interval[], limit: number): Concurrency {
  const edges: [number, number][] = [];
  for (const { from, to } of intervals) {
    edges.push([from, 1], [to, -1]);
  }
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  const result: Concurrency = { max: 0, over: 0, firstOverAt: null };
  for (const [at, step] of edges) {
    running += step;
    if (running > result.max) result.max = running;
    if (step === 1 && running > limit) {
      result.over++;
      result.firstOverAt ??= at;
    }
  }
  return result;
}

/** Whether [from, to] meets any of `windows` (each [from, to], closed). */
export function meets(from: number, to: number, windows: readonly Interval[]): boolean {
  return windows.some((w) => w.from <= to && w.to >= from);
}
