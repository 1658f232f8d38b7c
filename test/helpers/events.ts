import type { RotaEventMap, RotaEventName, RotaEvents } from "../../src/events.js";

/** Resolves with the first `event` matching `match`; fails the test after `timeoutMs`. */
export function nextEvent<E extends RotaEventName>(
  events: RotaEvents,
  event: E,
  match: (payload: RotaEventMap[E]) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<RotaEventMap[E]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = events.on(event, (payload) => {
      if (!match(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Resolves once `count` matching events have been seen. */
export function events<E extends RotaEventName>(
  source: RotaEvents,
  event: E,
  count: number,
  match: (payload: RotaEventMap[E]) => boolean = () => true,
  timeoutMs = 30_000,
): Promise<RotaEventMap[E][]> {
  const seen: RotaEventMap[E][] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`saw ${seen.length} of ${count} ${event} events within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = source.on(event, (payload) => {
      if (!match(payload)) return;
      seen.push(payload);
      if (seen.length === count) {
        clearTimeout(timer);
        off();
        resolve(seen);
      }
    });
  });
}

/** A promise with its resolve function, for handlers a test wants to hold open. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
