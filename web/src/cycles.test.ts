import { describe, expect, it } from "vitest";
import { emptyIssues } from "./graph";
import { cycleText, findCycle, withCycle } from "./cycles";

const link = (source: string, target: string) => ({ id: `${source}-${target}`, source, target });

describe("finding a cycle", () => {
  it("names the nodes and connections of the cycle, not the ones leading to it", () => {
    const cycle = findCycle(["start", "a", "b", "c"], [link("start", "a"), link("a", "b"), link("b", "c"), link("c", "a")]);
    expect(cycle).toEqual({ path: ["a", "b", "c", "a"], edges: ["a-b", "b-c", "c-a"] });
    expect(cycleText(cycle!)).toBe("a → b → c → a");
  });

  it("finds a node connected to itself, and none in a graph that only branches and joins", () => {
    expect(findCycle(["a"], [link("a", "a")])).toEqual({ path: ["a", "a"], edges: ["a-a"] });
    const diamond = [link("s", "l"), link("s", "r"), link("l", "j"), link("r", "j")];
    expect(findCycle(["s", "l", "r", "j"], diamond)).toBeNull();
  });

  it("marks the cycle's nodes and connections among the other problems", () => {
    const issues = { ...emptyIssues(), nodes: { a: [{ field: "url", msg: "required" }] } };
    const marked = withCycle(issues, { path: ["a", "b", "a"], edges: ["a-b", "b-a"] });
    expect(marked.nodes.a.map((p) => p.msg)).toEqual(["required", "part of a cycle: a → b → a"]);
    expect(Object.keys(marked.edges)).toEqual(["a-b", "b-a"]);
    expect(issues.nodes.a).toHaveLength(1); // not changed in place
    expect(withCycle(issues, null)).toBe(issues);
  });
});
