import { describe, expect, it } from "vitest";
import { parseWake } from "../../src/worker/listener.js";

describe("parseWake (the payload of a jobs wake-up)", () => {
  it.each([
    ["mail", ["mail", null, 0]],
    ["mail 123", ["mail", "123", 0]],
    ["a:b.c-d_e 9007199254740993", ["a:b.c-d_e", "9007199254740993", 0]],
    ["*", ["*", null, 0]],
    // Jobs due later: the queue and the milliseconds until the first is due.
    ["mail +1500", ["mail", null, 1500]],
    ["mail +0", ["mail", null, 0]],
    ["odd name +7", ["odd name", null, 7]],
    // Anything else after the last space is part of the name.
    ["mail -5", ["mail -5", null, 0]],
    ["mail +", ["mail +", null, 0]],
    ["mail +1.5", ["mail +1.5", null, 0]],
    // A name with a space written to the table by hand still wakes its queue.
    ["odd name", ["odd name", null, 0]],
    ["odd name 42", ["odd name", "42", 0]],
    ["trailing ", ["trailing ", null, 0]],
    [" 5", [" 5", null, 0]],
  ] as const)("%j", (payload, [queue, jobId, dueInMs]) => {
    expect(parseWake(payload)).toEqual({ queue, jobId, dueInMs });
  });
});
