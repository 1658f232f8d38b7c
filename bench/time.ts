/**
 * Wall-clock milliseconds with sub-millisecond resolution. Built on the
 * monotonic clock plus the process's time origin, so readings from two
 * processes on one machine can be compared (the 2-process workload does).
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Resolves with "timeout" after `ms` unless `promise` settles first; the timer never holds the process. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Like `promise`, but rejects if it has not settled within `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const outcome = await withTimeout(promise, ms);
  if (outcome === "timeout") throw new Error(`${what} did not finish within ${ms / 1000} s`);
  return outcome;
}

/**
 * How steadily this machine runs an idle process: a 10 ms timer for `ms`, and
 * the longest and the number of over-50 ms gaps between its ticks. On a quiet
 * machine the longest gap is a few milliseconds; large gaps mean the host is
 * stalling processes, which shows up in every latency tail.
 */
export async function timerStalls(ms: number): Promise<{ max_ms: number; over_50ms: number }> {
  let last = nowMs();
  let max = 0;
  let over50 = 0;
  const timer = setInterval(() => {
    const now = nowMs();
    const gap = now - last - 10;
    if (gap > max) max = gap;
    if (gap > 50) over50++;
    last = now;
  }, 10);
  await sleep(ms);
  clearInterval(timer);
  return { max_ms: Number(max.toFixed(1)), over_50ms: over50 };
}
