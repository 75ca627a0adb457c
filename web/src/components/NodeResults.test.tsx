import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { applyEvents, emptyRun } from "../state/executionState";
import type { ExecutionEvent } from "../types";
import { NodeResults } from "./NodeResults";

function ev(seq: number, type: string, node: string | null, attempt: number | null, data: Record<string, unknown> = {}): ExecutionEvent {
  return { seq, type, time: `2026-11-26T10:00:0${seq}Z`, execution_id: "exec_0001", node, attempt, data };
}

const START = [
  ev(1, "ExecutionRequested", null, null, { mode: "trigger", trigger: "a" }),
  ev(2, "ExecutionStarted", null, null, { plan: ["a"] }),
];
const DEFERRED = ev(3, "NodeDeferred", "a", 1, { key: "alice", limit: 64 });
const WAITING = "Waiting for a runner: alice has 64 nodes queued or running (their share)";

function results(events: ExecutionEvent[]) {
  const run = applyEvents(emptyRun("exec_0001"), events);
  return render(<NodeResults node="a" state={run.nodes.a} events={events} />);
}

describe("NodeResults of a node waiting for its user's share of the runners", () => {
  it("says whose share it waits for, next to its unchanged status", () => {
    results([...START, DEFERRED]);
    expect(screen.getByText(WAITING)).toBeTruthy();
    expect(screen.getByText("pending")).toBeTruthy();
    expect(screen.getByText("waiting for a runner")).toBeTruthy(); // its row in the attempts
  });

  it("says nothing about it once the attempt is ready", () => {
    results([...START, DEFERRED, ev(4, "NodeReady", "a", 1, { input: { main: [{}] } })]);
    expect(screen.queryByText(/Waiting for a runner/i)).toBeNull();
    expect(screen.getByText("queued")).toBeTruthy();
    expect(screen.getByText("in progress")).toBeTruthy();
  });

  it("says nothing about it for a node that was never deferred", () => {
    results([...START, ev(3, "NodeReady", "a", 1, { input: {} }), ev(4, "NodeStarted", "a", 1)]);
    expect(screen.queryByText(/Waiting for a runner/i)).toBeNull();
  });
});

describe("NodeResults of an execute_workflow node", () => {
  it("links each child execution it started to that execution of the called workflow", () => {
    const events = [
      ...START,
      ev(3, "NodeReady", "a", 1, { input: { main: [{}, {}] } }),
      ev(4, "NodeStarted", "a", 1),
      ev(5, "WorkflowCalled", "a", 1, { workflow_id: "wf_child", mode: "each_item" }),
      ev(6, "ChildExecutionStarted", "a", 1, { index: 0, child: "c0" }),
      ev(7, "ChildExecutionStarted", "a", 1, { index: 1, child: "c1" }),
    ];
    results(events);
    const link = screen.getByRole("link", { name: "c1" });
    expect(link.getAttribute("href")).toBe("/workflows/wf_child/executions/c1");
    expect(screen.getByRole("link", { name: "c0" })).toBeTruthy();
  });

  it("names the execution and node that started a child execution", () => {
    const requested = ev(1, "ExecutionRequested", null, null, {
      mode: "trigger",
      trigger: "a",
      parent_execution: "p1",
      parent_node: "call",
    });
    results([requested, START[1], ev(3, "NodeReady", "a", 1, { input: {} })]);
    expect(screen.getByText(/was started by node/).textContent).toBe(
      "This execution was started by node call of execution p1.",
    );
    expect(screen.getByRole("link", { name: "p1" }).getAttribute("href")).toBe("/executions/p1");
  });
});
