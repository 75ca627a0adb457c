import { describe, expect, it } from "vitest";
import { retryFrom, triggersUpstream } from "./rerun";
import type { Execution, NodeExecution, NodeType, WorkflowDef } from "./types";

const nodeRun = (status: NodeExecution["status"]): NodeExecution => ({
  status,
  attempts: 1,
  started_at: null,
  finished_at: null,
  output: null,
  error: null,
  skip_reason: null,
});

function execution(nodes: Record<string, NodeExecution["status"]>, extra: Partial<Execution> = {}): Execution {
  return {
    id: "e1",
    workflow_id: "w1",
    workflow_version: 1,
    mode: "trigger",
    trigger: "start",
    node: null,
    status: "failed",
    created_at: "2026-01-01T00:00:00Z",
    started_at: null,
    finished_at: null,
    error: null,
    last_seq: 9,
    nodes: Object.fromEntries(Object.entries(nodes).map(([id, s]) => [id, nodeRun(s)])),
    ...extra,
  };
}

describe("retryFrom", () => {
  it("picks the first failed node", () => {
    expect(retryFrom(execution({ start: "succeeded", a: "succeeded", b: "failed", c: "failed" }))).toBe("b");
  });
  it("else the first node that did not succeed (a cancelled run)", () => {
    expect(retryFrom(execution({ start: "succeeded", a: "cancelled", b: "skipped" }))).toBe("a");
  });
  it("else the trigger", () => {
    expect(retryFrom(execution({ start: "succeeded" }))).toBe("start");
  });
  it("names the node of a node-mode execution", () => {
    expect(retryFrom(execution({ only: "failed" }, { mode: "node", node: "only", trigger: null }))).toBe("only");
  });
});

describe("triggersUpstream", () => {
  const types = {
    manual_trigger: { type: "manual_trigger", category: "trigger" },
    webhook: { type: "webhook", category: "trigger" },
    noop: { type: "noop", category: "action" },
  } as unknown as Record<string, NodeType>;
  const def: WorkflowDef = {
    name: "w",
    nodes: [
      { id: "hook", type: "webhook" },
      { id: "start", type: "manual_trigger" },
      { id: "a", type: "noop" },
      { id: "b", type: "noop" },
      { id: "lone", type: "noop" },
    ],
    connections: [
      { from: "start", to: "a" },
      { from: "a", to: "b" },
      { from: "hook", to: "b" },
    ],
  };

  it("finds every trigger that reaches the node, nearest first", () => {
    expect(triggersUpstream("b", def, types)).toEqual(["hook", "start"]);
    expect(triggersUpstream("a", def, types)).toEqual(["start"]);
  });
  it("finds none for a node no trigger reaches", () => {
    expect(triggersUpstream("lone", def, types)).toEqual([]);
  });
});
