import { render, screen } from "@testing-library/react";
import { ReactFlowProvider } from "@xyflow/react";
import { describe, expect, it } from "vitest";
import { emptyIssues } from "../graph";
import { applyEvents, emptyRun, type RunState } from "../state/executionState";
import type { ExecutionEvent, NodeType } from "../types";
import { EditorContext, type EditorContextValue } from "./EditorContext";
import { NodeCard } from "./NodeCard";

function ev(seq: number, type: string, node: string | null, attempt: number | null, data: Record<string, unknown> = {}): ExecutionEvent {
  return { seq, type, time: `2026-11-26T10:00:0${seq}Z`, execution_id: "exec_0001", node, attempt, data };
}

const noop: NodeType = {
  type: "noop",
  display_name: "No-op",
  category: "action",
  parameters_schema: { type: "object", properties: {} },
  outputs: ["main"],
};

const START = [
  ev(1, "ExecutionRequested", null, null, { mode: "trigger", trigger: "a" }),
  ev(2, "ExecutionStarted", null, null, { plan: ["a"] }),
];
const DEFERRED = ev(3, "NodeDeferred", "a", 1, { key: "alice", limit: 64 });

function card(run: RunState) {
  const editor: EditorContextValue = {
    types: { noop },
    run,
    issues: emptyIssues(),
    readOnly: true,
    busy: false,
    runTrigger: () => undefined,
    openMenu: () => undefined,
  };
  const props = {
    id: "a",
    type: "nd",
    data: { def: { id: "a", type: "noop" } },
    selected: false,
    dragging: false,
    zIndex: 0,
    isConnectable: false,
    positionAbsoluteX: 0,
    positionAbsoluteY: 0,
    selectable: true,
    deletable: true,
    draggable: true,
  } as unknown as Parameters<typeof NodeCard>[0];
  return render(
    <ReactFlowProvider>
      <EditorContext.Provider value={editor}>
        <NodeCard {...props} />
      </EditorContext.Provider>
    </ReactFlowProvider>,
  );
}

describe("NodeCard of a node waiting for its user's share of the runners", () => {
  it("says so under its unchanged status, naming the user", () => {
    card(applyEvents(emptyRun("exec_0001"), [...START, DEFERRED]));
    const node = screen.getByTestId("node-a");
    expect(node.dataset.status).toBe("pending");
    expect(node.textContent).toContain("Waiting for a runner (alice’s share)");
    expect(node.getAttribute("aria-label")).toContain("pending, waiting for a runner");
    expect(screen.getByTitle("Waiting for a runner: alice has 64 nodes queued or running (their share)")).toBeTruthy();
  });

  it("says nothing about it once the attempt is ready", () => {
    card(applyEvents(emptyRun("exec_0001"), [...START, DEFERRED, ev(4, "NodeReady", "a", 1, { input: {} })]));
    const node = screen.getByTestId("node-a");
    expect(node.dataset.status).toBe("queued");
    expect(node.textContent).not.toContain("Waiting for a runner");
    expect(node.getAttribute("aria-label")).not.toContain("waiting for a runner");
  });
});
