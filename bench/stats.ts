/**
 * The p-th percentile (0-100) of `values` by nearest rank: the smallest value
 * with at least p% of the values at or below it. Any order; NaN when empty.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** The median by nearest rank (of an even count, the lower middle value). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * The most intervals open at once (a sweep over their starts and ends, any
 * order, unpaired). An end at the same time as a start comes first: one
 * interval ending as another begins is not an overlap. A start without its
 * end counts as open to the last.
 */
export function maxOverlap(starts: readonly number[], ends: readonly number[]): number {
  const events = [
    ...starts.map((at) => ({ at, step: 1 })),
    ...ends.map((at) => ({ at, step: -1 })),
  ].sort((a, b) => a.at - b.at || a.step - b.step);
  let open = 0;
  let max = 0;
  for (const { step } of events) {
    open += step;
    if (open > max) max = open;
  }
  return max;
}

export function round(value: number, places: number): number {
  const factor = 10 ** places;
  return Math.round(value * factor) / factor;
}
