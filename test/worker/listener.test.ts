import { describe, expect, it } from "vitest";
import { parseWake } from "../../src/worker/listener.js";

describe("parseWake (the payload of a jobs wake-up)", () => {
  it.each([
    ["mail", ["mail", null]],
    ["mail 123", ["mail", "123"]],
    ["a:b.c-d_e 9007199254740993", ["a:b.c-d_e", "9007199254740993"]],
    ["*", ["*", null]],
    // A name with a space written to the table by hand still wakes its queue.
    ["odd name", ["odd name", null]],
    ["odd name 42", ["odd name", "42"]],
    ["trailing ", ["trailing ", null]],
    [" 5", [" 5", null]],
  ])("%j", (payload, expected) => {
    expect(parseWake(payload)).toEqual(expected);
  });
});
