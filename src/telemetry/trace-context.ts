/**
 * A job's trace context as jobs.trace_context stores it (migration 0021):
 * the W3C Trace Context headers of its enqueue's "send" span. rota writes
 * and reads the traceparent itself instead of asking the global propagator,
 * so the column means the same whatever propagation an application set up
 * (B3, Jaeger, none), and any consumer that reads W3C can follow it.
 */
export interface StoredTraceContext {
  /** `00-<trace id>-<span id>-<flags>`. */
  traceparent: string;
  /** The W3C tracestate header, when the span had one. */
  tracestate?: string;
}

/** What the OpenTelemetry API calls a SpanContext, as far as rota reads and writes it. */
export interface TraceIds {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/**
 * The JSON text stored for a span's context; null when the context names no
 * trace (a no-op tracer without a parent): there is nothing to link to.
 */
export function traceContextJson(ids: TraceIds, tracestate: string | undefined): string | null {
  if (!validIds(ids.traceId, ids.spanId)) return null;
  const flags = (ids.traceFlags & 0xff).toString(16).padStart(2, "0");
  const stored: StoredTraceContext = { traceparent: `00-${ids.traceId}-${ids.spanId}-${flags}` };
  if (tracestate) stored.tracestate = tracestate;
  return JSON.stringify(stored);
}

/**
 * The span context a stored trace context names, or null when it is missing
 * or does not parse (written by hand, or by a future version): a job whose
 * context cannot be read is processed with no link, never refused.
 */
export function parseTraceContext(
  stored: StoredTraceContext | null | undefined,
): (TraceIds & { tracestate: string | undefined }) | null {
  if (stored === null || typeof stored !== "object" || typeof stored.traceparent !== "string") {
    return null;
  }
  const match = TRACEPARENT.exec(stored.traceparent);
  if (match === null) return null;
  const [, version, traceId, spanId, flags, rest] = match as unknown as string[];
  // Version ff is invalid; version 00 has nothing after the flags (a later
  // version may, and its first four fields are read as 00's).
  if (version === "ff" || (version === "00" && rest !== undefined)) return null;
  if (!validIds(traceId as string, spanId as string)) return null;
  return {
    traceId: traceId as string,
    spanId: spanId as string,
    traceFlags: Number.parseInt(flags as string, 16),
    tracestate: typeof stored.tracestate === "string" ? stored.tracestate : undefined,
  };
}

function validIds(traceId: string, spanId: string): boolean {
  return (
    /^[0-9a-f]{32}$/.test(traceId) &&
    /^[0-9a-f]{16}$/.test(spanId) &&
    traceId !== ZERO_TRACE &&
    spanId !== ZERO_SPAN
  );
}
