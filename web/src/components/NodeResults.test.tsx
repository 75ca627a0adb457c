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
