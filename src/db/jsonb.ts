/**
 * What JSON can carry but PostgreSQL's jsonb cannot store: the NUL character
 * (U+0000; PostgreSQL text has none) and unpaired UTF-16 surrogates (no
 * Unicode character, so no UTF-8 either). JSON.stringify writes both as
 * escapes (\u0000, \udXXX), and jsonb refuses the whole value with a data
 * exception, and the statement with it. rota refuses such a payload with an
 * actionable error (unstorableEscape) and mends the text it writes itself,
 * such as an error message (storableJson).
 */

/** The characters jsonb refuses, as they appear in a JavaScript string. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is one of the characters jsonb refuses.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The same, as JSON.stringify escapes them: an escape (after an even run of backslashes) of NUL or of a lone surrogate. */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(0000|d[89a-f][0-9a-f]{2})/;

/**
 * `value` as JSON text jsonb accepts: every NUL and unpaired surrogate in its
 * string values becomes U+FFFD (for text rota writes itself, where a mended
 * character is better than a lost write).
 */
export function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "string" ? v.replace(UNSTORABLE, "\uFFFD") : v,
  );
}

/**
 * What in JSON.stringify's output jsonb would refuse, described for a person
 * ("a NUL character (\u0000)", "an unpaired UTF-16 surrogate (\udXXX)"), or
 * null. JSON.stringify escapes only lone surrogates, and an escaped backslash
 * before the u ("\\u0000" in the text: the six characters typed) is fine.
 */
export function unstorableEscape(jsonText: string): string | null {
  const found = jsonText.includes("\\u") ? UNSTORABLE_ESCAPE.exec(jsonText) : null;
  if (found === null) return null;
  return found[1] === "0000"
    ? "a NUL character (\\u0000)"
    : `an unpaired UTF-16 surrogate (\\u${found[1]})`;
}
