import { describe, expect, it } from "vitest";
import { problemCount, runProblems } from "./problems";

describe("runProblems", () => {
  it("locates a refused run's problems within the definition", () => {
    const issues = [
      { loc: ["body", "workflow_id", "nodes", 1, "parameters", "url"], msg: "the saved workflow cannot run: x", type: "missing" },
      { loc: ["body", "workflow_id", "connections"], msg: "cycle a -> b -> a", type: "cycle" },
    ];
    expect(runProblems({ status: 422, issues })).toEqual([
      { loc: ["nodes", 1, "parameters", "url"], msg: "the saved workflow cannot run: x", type: "missing" },
      { loc: ["connections"], msg: "cycle a -> b -> a", type: "cycle" },
    ]);
  });

  it("finds none in other refusals", () => {
    const input = [{ loc: ["body", "input"], msg: "parent a has no output", type: "value_error" }];
    expect(runProblems({ status: 422, issues: input })).toEqual([]);
    expect(runProblems({ status: 409, issues: [] })).toEqual([]);
    expect(runProblems({ status: 422, issues: [] })).toEqual([]);
  });
});

it("counts problems in words", () => {
  expect(problemCount(1)).toBe("1 problem");
  expect(problemCount(2)).toBe("2 problems");
});
