import { describe, expect, it } from "vitest";
import { nodePanelData, type RunData } from "./nodePanelData";

const EDGES = [
  { source: "start", target: "fetch", sourceHandle: "main", targetHandle: "main" },
  { source: "fetch", target: "tag" },
];
const RUN: RunData = {
  executionId: "e1",
  trigger: "start",
  nodes: {
    start: { input: { main: [{ q: 1 }] }, output: { main: [{ q: 1 }] } },
    fetch: { input: { main: [{ q: 1 }] }, output: { main: [{ status: 200 }, { status: 404 }] } },
  },
};

describe("nodePanelData", () => {
  it("uses a node's recorded input and output", () => {
    const data = nodePanelData("fetch", ["start", "fetch", "tag"], EDGES, RUN);
    expect(data.input).toEqual({ main: [{ q: 1 }] });
    expect(data.inputRecorded).toBe(true);
    expect(data.output).toEqual({ main: [{ status: 200 }, { status: 404 }] });
    expect(data.parents).toEqual({ start: { main: [{ q: 1 }] } });
    expect(data.expression.item).toEqual({ q: 1 });
    expect(data.execution).toEqual({ id: "e1", trigger: "start" });
  });
  it("assembles the input of a node that has not run from its parents", () => {
    const data = nodePanelData("tag", ["start", "fetch", "tag"], EDGES, RUN);
    expect(data.input).toEqual({ main: [{ status: 200 }, { status: 404 }] });
    expect(data.inputRecorded).toBe(false);
    expect(data.output).toBeNull();
    expect(data.expression.item).toEqual({ status: 200 });
    expect(Object.keys(data.expression.nodes)).toEqual(["start", "fetch"]);
  });
  it("has nothing without a run", () => {
    const data = nodePanelData("tag", ["tag"], [], null);
    expect(data).toMatchObject({ input: null, output: null, parents: {}, execution: {} });
    expect(data.expression.item).toBeNull();
  });
});
