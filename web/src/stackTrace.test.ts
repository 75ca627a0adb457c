import { describe, expect, it } from "vitest";
import { ownFrames, parseStack } from "./stackTrace";

const CODE_ERROR = `Traceback (most recent call last):
  File "/app/nodedrop/runner/sandbox/bootstrap.py", line 88, in run
    result = main(items, ctx)
  File "<code>", line 7, in main
    return [helper(i) for i in items]
  File "<code>", line 3, in helper
    return 1 / item["n"]
           ~~^~~~~~~~~~~
ZeroDivisionError: division by zero`;

describe("a stack trace", () => {
  it("tells the user's frames from the engine's, innermost first", () => {
    const parsed = parseStack(CODE_ERROR);
    expect(parsed.frames.map((f) => [f.file, f.line, f.func, f.own])).toEqual([
      ["/app/nodedrop/runner/sandbox/bootstrap.py", 88, "run", false],
      ["<code>", 7, "main", true],
      ["<code>", 3, "helper", true],
    ]);
    expect(ownFrames(parsed).map((f) => [f.line, f.source])).toEqual([
      [3, 'return 1 / item["n"]'],
      [7, "return [helper(i) for i in items]"],
    ]);
    expect(parsed.exception).toBe("ZeroDivisionError: division by zero");
  });

  it("an engine-only trace has no own frames, and text without frames is the exception", () => {
    const engine = parseStack(`Traceback (most recent call last):\n  File "/x/y.py", line 1, in f\n    g()\nValueError: bad`);
    expect(ownFrames(engine)).toEqual([]);
    expect(engine.exception).toBe("ValueError: bad");
    expect(parseStack("just a message")).toEqual({ frames: [], exception: "just a message" });
  });
});
