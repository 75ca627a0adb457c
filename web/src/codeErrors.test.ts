import { describe, expect, it } from "vitest";
import { errorLines, lineOfRunError, lineOfSaveProblem } from "./codeErrors";

describe("the line a code node's error is about", () => {
  it("is named in a save's 422 message", () => {
    expect(lineOfSaveProblem("node 'score': Value error, line 3, column 19: invalid syntax")).toBe(3);
    expect(lineOfSaveProblem("Value error, line 12: expected ':'")).toBe(12);
    expect(lineOfSaveProblem("node 'score': Value error, the source must define a top-level function `def main(...)`")).toBeNull();
    expect(lineOfSaveProblem("String should have at most 100000 characters")).toBeNull();
  });

  it("is the innermost <code> frame of a CodeError's stack", () => {
    const stack =
      'Traceback (most recent call last):\n  File "<code>", line 7, in main\n    return helper(x)\n' +
      '  File "<code>", line 2, in helper\n    return 1 / 0\nZeroDivisionError: division by zero\n';
    expect(lineOfRunError({ type: "CodeError", message: "ZeroDivisionError: division by zero (line 2)", stack })).toBe(2);
  });

  it("falls back to the message's line, and is none for other errors", () => {
    expect(lineOfRunError({ type: "CodeError", message: "main returned a str, not items (line 4)", stack: null })).toBe(4);
    expect(lineOfRunError({ type: "CodeError", message: "the process died (memory?)", stack: "" })).toBeNull();
    expect(lineOfRunError({ type: "CodeLimitExceeded", message: "more than 30 s of CPU (line 1)", stack: 'File "<code>", line 1' })).toBeNull();
  });

  it("gathers the save problems and the run's error", () => {
    const run = { type: "CodeError", message: "KeyError: 'total' (line 5)", stack: 'File "<code>", line 5, in main' };
    expect(errorLines(["node 'n': Value error, line 3, column 1: invalid syntax", "unrelated"], run)).toEqual([
      { line: 3, message: "node 'n': Value error, line 3, column 1: invalid syntax" },
      { line: 5, message: "KeyError: 'total' (line 5)" },
    ]);
    expect(errorLines([], null)).toEqual([]);
  });
});
