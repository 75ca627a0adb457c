import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { applyEvents, emptyRun, type RunState } from "../state/executionState";
import type { ExecutionEvent } from "../types";
import { RunBar } from "./RunBar";
import { describeEvent } from "./TimelinePanel";

function ev(seq: number, type: string, data: Record<string, unknown> = {}): ExecutionEvent {
  return { seq, type, time: `2026-11-26T10:00:0${seq}Z`, execution_id: "exec_0001", node: null, attempt: null, data };
}

const requested = ev(1, "ExecutionRequested", { mode: "trigger", trigger: "start" });

function bar(run: RunState) {
  return render(
    <RunBar run={run} connection={null} stepping={false} onCancel={() => undefined} cancelling={false} canCancel={false} />,
  );
}

describe("RunBar of an execution waiting for a concurrency limit", () => {
  it("says in words that a workflow's limit holds it back", () => {
    bar(applyEvents(emptyRun("exec_0001"), [requested, ev(2, "ExecutionQueued", { scope: "workflow", key: "wf_1", limit: 1 })]));
    const status = screen.getByRole("status", { name: "Execution status" });
    expect(status.textContent).toContain("Waiting: workflow limit of 1 running execution reached");
    expect(status.textContent).toContain("queued");
  });

  it("names the user whose limit is full", () => {
    bar(applyEvents(emptyRun("exec_0001"), [requested, ev(2, "ExecutionQueued", { scope: "user", key: "alice", limit: 3 })]));
    expect(screen.getByText(/Waiting: user limit of 3 running executions reached \(alice\)/)).toBeTruthy();
  });

  it("says nothing about waiting once the execution started", () => {
    bar(
      applyEvents(emptyRun("exec_0001"), [
        requested,
        ev(2, "ExecutionQueued", { scope: "workflow", key: "wf_1", limit: 1 }),
        ev(3, "ExecutionStarted", { plan: ["start"] }),
      ]),
    );
    expect(screen.queryByText(/Waiting:/)).toBeNull();
  });

  it("says nothing about waiting for an execution queued without a limit", () => {
    bar(applyEvents(emptyRun("exec_0001"), [requested]));
    expect(screen.queryByText(/Waiting:/)).toBeNull();
  });
});

describe("describeEvent", () => {
  it("describes the wait of an ExecutionQueued event", () => {
    expect(describeEvent(ev(2, "ExecutionQueued", { scope: "workflow", key: "wf_1", limit: 2 }))).toBe(
      "Execution queued. Waiting: workflow limit of 2 running executions reached",
    );
  });

  it("describes the wait of a NodeDeferred event", () => {
    const e = { ...ev(5, "NodeDeferred", { key: "alice", limit: 64 }), node: "fetch", attempt: 2 };
    expect(describeEvent(e)).toBe(
      "NodeDeferred fetch (attempt 2). Waiting for a runner: alice has 64 nodes queued or running (their share)",
    );
  });
});

describe("RunBar while stepping through a past execution", () => {
  const events = [
    requested,
    ev(2, "ExecutionStarted", { plan: ["start"] }),
    { ...ev(3, "NodeReady", {}), node: "start", attempt: 1 },
  ];

  it("shows the time elapsed up to the step shown, not up to now", () => {
    const run = applyEvents(emptyRun("exec_0001"), events);
    render(
      <RunBar run={run} connection={null} stepping asOf={events[2].time} onCancel={() => undefined} cancelling={false} canCancel={false} />,
    );
    const status = screen.getByRole("status", { name: "Execution status" });
    expect(status.textContent).toContain("running");
    expect(screen.getByLabelText("Elapsed").textContent).toBe("1.00 s");
    expect(status.textContent).toContain("Timeline view: the state at");
  });
});
