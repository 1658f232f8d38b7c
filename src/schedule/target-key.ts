import { storableText } from "../queue/job-options.js";

/**
 * What a target key is, pure: checked by `targets.add` before it writes and
 * by `rota simulate` before it places, so a key one accepts the other does.
 */

const MAX_KEY_BYTES = 200;

export const TARGET_KEY_RULE = `a key is 1-${MAX_KEY_BYTES} bytes of text without NUL or unpaired surrogates`;

export function isTargetKey(key: unknown): key is string {
  return (
    typeof key === "string" &&
    key !== "" &&
    Buffer.byteLength(key) <= MAX_KEY_BYTES &&
    // Checked as for every text rota stores: an unpaired surrogate would be
    // stored as U+FFFD, another key than the one given.
    storableText(key)
  );
}
