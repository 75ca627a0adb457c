import { describe, expect, it } from "vitest";
import { keptBeforeNodeRun, withEarlierStates } from "./earlierStates";
import { applyEvents, emptyRun, type RunState } from "./state/executionState";
import type { ExecutionEvent } from "./types";

let seq = 0;
function event(type: string, node: string | null, data: Record<string, unknown> = {}, attempt = 1): ExecutionEvent {
  seq += 1;
  return { seq, type, time: `2026-01-01T00:00:${String(seq).padStart(2, "0")}Z`, execution_id: "x", node, attempt: node ? attempt : null, data } as ExecutionEvent;
}

function succeeded(id: string, nodes: string[], mode = "trigger"): RunState {
  const events: ExecutionEvent[] = [
    event("ExecutionRequested", null, { mode, workflow: { nodes: nodes.map((n) => ({ id: n, type: "noop" })), connections: [] } }),
    event("ExecutionStarted", null, { plan: nodes }),
  ];
  for (const n of nodes) events.push(event("NodeReady", n, { input: { main: [{}] } }), event("NodeStarted", n), event("NodeSucceeded", n, { output: { main: [{ n }] } }));
  return applyEvents(emptyRun(id), events);
}

describe("keeping the other nodes' states when one node runs alone", () => {
  it("shows the earlier run's states for the nodes the node run does not have", () => {
    const whole = succeeded("e1", ["start", "a", "b"]);
    const earlier = keptBeforeNodeRun(whole, "a");
    expect(Object.keys(earlier!.nodes).sort()).toEqual(["b", "start"]);
    const alone = succeeded("e2", ["a"], "node");
    const shown = withEarlierStates(alone, earlier)!;
    expect(Object.keys(shown.nodes).sort()).toEqual(["a", "b", "start"]);
    expect(shown.nodes.start).toBe(whole.nodes.start);
    expect(shown.nodes.a).toBe(alone.nodes.a); // the node run's own state wins
    expect(shown.executionId).toBe("e2");
    expect(shown.plan).toEqual(["a"]); // progress and the run bar stay the node run's
  });

  it("does not show the node's earlier state before its own arrives", () => {
    const earlier = keptBeforeNodeRun(succeeded("e1", ["start", "a"]), "a");
    const justRequested = emptyRun("e2");
    expect(Object.keys(withEarlierStates(justRequested, earlier)!.nodes)).toEqual(["start"]);
  });

  it("keeps nothing without an earlier run", () => {
    const run = succeeded("e2", ["a"], "node");
    expect(withEarlierStates(run, null)).toBe(run);
    expect(withEarlierStates(null, keptBeforeNodeRun(run, "b"))).toBeNull();
    expect(keptBeforeNodeRun(null, "a")).toBeNull();
  });
});
