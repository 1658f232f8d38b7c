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

export function round(value: number, places: number): number {
  const factor = 10 ** places;
  return Math.round(value * factor) / factor;
}
