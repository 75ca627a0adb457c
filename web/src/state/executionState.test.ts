import { describe, expect, it } from "vitest";
import type { ExecutionEvent } from "../types";
import {
  nodeAttempts,
  applyEvent,
  applyEvents,
  deferredLabel,
  emptyRun,
  progress,
  runFromExecution,
  statusLabel,
  timeline,
  waitingLabel,
} from "./executionState";

let seq = 0;
function ev(type: string, node: string | null = null, attempt: number | null = null, data = {}): ExecutionEvent {
  seq += 1;
  return { seq, type, time: `2026-11-26T10:00:${String(seq).padStart(2, "0")}Z`, execution_id: "x", node, attempt, data };
}

function started(plan: string[]) {
  seq = 0;
  return [ev("ExecutionRequested", null, null, { mode: "trigger", trigger: plan[0] }), ev("ExecutionStarted", null, null, { plan })];
}

describe("applyEvent", () => {
  it("takes the start time of a start stored after its result, and nothing else from it", () => {
    const run = applyEvents(emptyRun("x"), [
      ...started(["fetch"]),
      ev("NodeReady", "fetch", 1, { input: { main: [{}] } }),
      ev("NodeSucceeded", "fetch", 1, { output: { main: [{}] } }),
      ev("NodeStarted", "fetch", 1),
    ]);
    expect(run.nodes.fetch.status).toBe("succeeded");
    expect(run.nodes.fetch.startedAt).toBe("2026-11-26T10:00:05Z");
    expect(run.nodes.fetch.finishedAt).toBe("2026-11-26T10:00:04Z");
  });

  it("moves nodes through queued, running and succeeded and records input and output", () => {
    const events = [
      ...started(["start", "fetch"]),
      ev("NodeReady", "start", 1, { input: { main: [{ a: 1 }] } }),
      ev("NodeStarted", "start", 1),
    ];
    let run = applyEvents(emptyRun("x"), events);
    expect(run.status).toBe("running");
    expect(run.nodes.start.status).toBe("running");
    expect(run.nodes.start.input).toEqual({ main: [{ a: 1 }] });
    expect(run.nodes.fetch.status).toBe("pending");
    run = applyEvent(run, ev("NodeSucceeded", "start", 1, { output: { main: [{ a: 2 }] } }));
    expect(run.nodes.start.status).toBe("succeeded");
    expect(run.nodes.start.output).toEqual({ main: [{ a: 2 }] });
    expect(progress(run)).toEqual({ done: 1, total: 2, fraction: 0.5 });
  });

  it("shows a retry with the attempt number and fences a late result of the old attempt", () => {
    let run = applyEvents(emptyRun("x"), [
      ...started(["fetch"]),
      ev("NodeReady", "fetch", 1, { input: { main: [{}] } }),
      ev("NodeStarted", "fetch", 1),
      ev("NodeFailed", "fetch", 1, { error: { type: "HttpServerError", message: "503" } }),
      ev("NodeRetryScheduled", "fetch", 1, { delay_ms: 200 }),
    ]);
    expect(run.nodes.fetch.status).toBe("retrying");
    expect(statusLabel(run.nodes.fetch)).toBe("retrying (attempt 2 next)");
    run = applyEvents(run, [ev("NodeReady", "fetch", 2, { input: { main: [{}] } }), ev("NodeStarted", "fetch", 2)]);
    expect(statusLabel(run.nodes.fetch)).toBe("running (attempt 2)");
    // A duplicate result of attempt 1 arriving late changes nothing.
    run = applyEvent(run, ev("NodeSucceeded", "fetch", 1, { output: { main: [] } }));
    expect(run.nodes.fetch.status).toBe("running");
    run = applyEvent(run, ev("NodeSucceeded", "fetch", 2, { output: { main: [{ ok: true }] } }));
    expect(run.nodes.fetch.status).toBe("succeeded");
    expect(run.nodes.fetch.attempts).toBe(2);
  });

  it("ignores an event at or below the last applied seq (a replay after reconnect)", () => {
    const events = [...started(["a"]), ev("NodeReady", "a", 1, { input: {} })];
    const run = applyEvents(emptyRun("x"), events);
    expect(applyEvent(run, events[2])).toBe(run);
    expect(applyEvents(run, events)).toBe(run);
  });

  it("records skips, cancels and the final status, after which nothing changes", () => {
    let run = applyEvents(emptyRun("x"), [
      ...started(["t", "w", "n"]),
      ev("NodeReady", "t", 1, { input: {} }),
      ev("NodeSucceeded", "t", 1, { output: { main: [{}] } }),
      ev("NodeWaiting", "w", 1, { input: { main: [{}] }, until: "later" }),
      ev("ExecutionCancelRequested", null, null, { requested_by: "admin" }),
      ev("NodeCancelled", "w", 1),
      ev("NodeSkipped", "n", null, { reason: "cancelled" }),
      ev("ExecutionFinished", null, null, { status: "cancelled" }),
    ]);
    expect(run.cancelRequested).toBe(true);
    expect(run.nodes.w.status).toBe("cancelled");
    expect(statusLabel(run.nodes.n)).toBe("skipped (cancelled)");
    expect(run.status).toBe("cancelled");
    expect(progress(run).fraction).toBe(1);
    const after = applyEvent(run, ev("NodeSucceeded", "n", 1, { output: {} }));
    expect(after.nodes.n.status).toBe("skipped");
  });

  it("reads a node-mode request's node from the event's own node field", () => {
    seq = 0;
    const run = applyEvent(emptyRun("x"), ev("ExecutionRequested", "noop", null, { mode: "node" }));
    expect(run.mode).toBe("node");
    expect(run.node).toBe("noop");
  });

  it("ignores events of nodes outside the plan", () => {
    const run = applyEvents(emptyRun("x"), [...started(["a"]), ev("NodeReady", "other", 1, { input: {} })]);
    expect(Object.keys(run.nodes)).toEqual(["a"]);
  });
});

describe("a failure's outcome, as the scheduler recorded it (NodeFailureHandled)", () => {
  const error = { type: "HttpServerError", message: "503" };
  const failing = () => [
    ...started(["t", "f", "g"]),
    ev("NodeReady", "f", 1, { input: { main: [{ i: 1 }, { i: 2 }] } }),
    ev("NodeReady", "g", 1, { input: { main: [{}] } }),
    ev("NodeFailed", "f", 1, { error }),
  ];

  it("routes the error to the error output under error_output, one item per input item", () => {
    const run = applyEvents(emptyRun("x"), [
      ...failing(),
      ev("NodeFailureHandled", "f", 1, { outcome: "error_output", error, failed_at: "2026-11-26T10:00:05Z" }),
    ]);
    expect(run.nodes.f.status).toBe("failed");
    expect(run.nodes.f.outcome).toBe("error_output");
    expect(run.nodes.f.finishedAt).toBe("2026-11-26T10:00:05Z");
    expect(run.nodes.f.output).toEqual({
      error: [
        { error, item: { i: 1 } },
        { error, item: { i: 2 } },
      ],
    });
  });

  it("shows retrying for a failure the scheduler retries, and the next attempt then", () => {
    const run = applyEvents(emptyRun("x"), [...failing(), ev("NodeFailureHandled", "f", 1, { outcome: "retry", error })]);
    expect(run.nodes.f.status).toBe("retrying");
    expect(run.nodes.f.outcome).toBeNull();
    expect(applyEvent(run, ev("NodeReady", "f", 2, { input: {} })).nodes.f.status).toBe("queued");
  });

  it("takes the scheduler's cancel over a success it ignored once the run began to end", () => {
    const run = applyEvents(emptyRun("x"), [
      ...failing(),
      ev("NodeSucceeded", "g", 1, { output: { main: [{}] } }), // stored before f's outcome
      ev("NodeFailureHandled", "f", 1, { outcome: "fail", error }),
      ev("NodeCancelled", "g", 1),
    ]);
    expect(run.nodes.g.status).toBe("cancelled");
    expect(run.nodes.g.output).toBeNull();
    expect(run.nodes.f.outcome).toBe("fail");
    // A failure for good is final: no later cancel changes it.
    expect(applyEvent(run, ev("NodeCancelled", "f", 1)).nodes.f.status).toBe("failed");
  });
});

describe("waiting for a concurrency limit", () => {
  function queued() {
    seq = 0;
    return [
      ev("ExecutionRequested", null, null, { mode: "trigger", trigger: "t" }),
      ev("ExecutionQueued", null, null, { scope: "workflow", key: "wf_1", limit: 1 }),
    ];
  }

  it("starts with no wait", () => {
    expect(emptyRun("x").waitingFor).toBeNull();
  });

  it("records the limit an execution that has not started waits on", () => {
    const run = applyEvents(emptyRun("x"), queued());
    expect(run.status).toBe("queued");
    expect(run.waitingFor).toEqual({ scope: "workflow", key: "wf_1", limit: 1 });
    expect(run.lastSeq).toBe(2);
  });

  it("clears the wait when the execution starts, keeping the rest of the start", () => {
    const before = applyEvents(emptyRun("x"), queued());
    const run = applyEvent(before, ev("ExecutionStarted", null, null, { plan: ["t"] }));
    expect(run.waitingFor).toBeNull();
    expect(run.status).toBe("running");
    expect(run.plan).toEqual(["t"]);
    expect(before.waitingFor).toEqual({ scope: "workflow", key: "wf_1", limit: 1 }); // not changed
  });

  it("clears the wait when the execution ends without starting (cancelled while queued)", () => {
    const run = applyEvents(emptyRun("x"), [...queued(), ev("ExecutionFinished", null, null, { status: "cancelled" })]);
    expect(run.waitingFor).toBeNull();
    expect(run.status).toBe("cancelled");
  });

  it("changes nothing for a repeated or older event", () => {
    const events = queued();
    const run = applyEvent(applyEvents(emptyRun("x"), events), ev("ExecutionStarted", null, null, { plan: ["t"] }));
    expect(applyEvent(run, events[1])).toBe(run); // the ExecutionQueued again, after the start
    const waiting = applyEvents(emptyRun("x"), events);
    expect(applyEvent(waiting, events[1])).toBe(waiting);
  });

  it("ignores a wait recorded after the execution started", () => {
    const run = applyEvents(emptyRun("x"), [
      ...started(["t"]),
      ev("ExecutionQueued", null, null, { scope: "user", key: "alice", limit: 3 }),
    ]);
    expect(run.waitingFor).toBeNull();
    expect(run.status).toBe("running");
    expect(run.lastSeq).toBe(3);
  });

  it("shows in the timeline only for the steps before the start", () => {
    const steps = timeline("x", [...queued(), ev("ExecutionStarted", null, null, { plan: ["t"] })]);
    expect(steps.map((s) => s.waitingFor?.limit ?? null)).toEqual([null, 1, null]);
  });

  it("says in words which limit is full", () => {
    expect(waitingLabel({ scope: "workflow", key: "wf_1", limit: 1 })).toBe(
      "Waiting: workflow limit of 1 running execution reached",
    );
    expect(waitingLabel({ scope: "user", key: "alice", limit: 3 })).toBe(
      "Waiting: user limit of 3 running executions reached (alice)",
    );
  });
});

describe("waiting for a runner (NodeDeferred)", () => {
  const share = { key: "alice", limit: 64 };

  it("starts with no deferral", () => {
    const run = applyEvents(emptyRun("x"), started(["a"]));
    expect(run.nodes.a.deferredFor).toBeNull();
  });

  it("records the user's share a pending node's first attempt waits on, its status unchanged", () => {
    const run = applyEvents(emptyRun("x"), [...started(["a"]), ev("NodeDeferred", "a", 1, share)]);
    expect(run.nodes.a.deferredFor).toEqual({ key: "alice", limit: 64 });
    expect(run.nodes.a.status).toBe("pending");
    expect(run.nodes.a.attempts).toBe(0);
    expect(run.lastSeq).toBe(3);
    expect(progress(run).done).toBe(0);
  });

  it("is cleared by the NodeReady that follows, which queues the attempt", () => {
    const deferred = applyEvents(emptyRun("x"), [...started(["a"]), ev("NodeDeferred", "a", 1, share)]);
    const run = applyEvent(deferred, ev("NodeReady", "a", 1, { input: { main: [{}] } }));
    expect(run.nodes.a.deferredFor).toBeNull();
    expect(run.nodes.a.status).toBe("queued");
    expect(run.nodes.a.attempts).toBe(1);
    expect(deferred.nodes.a.deferredFor).toEqual(share); // not changed
  });

  it("is cleared by a NodeWaiting (a wait node's attempt) and by a node's end", () => {
    const base = () => [...started(["a"]), ev("NodeDeferred", "a", 1, share)];
    expect(applyEvents(emptyRun("x"), [...base(), ev("NodeWaiting", "a", 1, { input: {}, until: "later" })]).nodes.a.deferredFor).toBeNull();
    expect(applyEvents(emptyRun("x"), [...base(), ev("NodeSkipped", "a", null, { reason: "cancelled" })]).nodes.a.deferredFor).toBeNull();
    expect(applyEvents(emptyRun("x"), [...base(), ev("NodeCancelled", "a", 1)]).nodes.a.deferredFor).toBeNull();
    // A pinned output (attempt 0, while pending) and a refusal before the attempt was made ready.
    expect(applyEvents(emptyRun("x"), [...base(), ev("NodeSucceeded", "a", 0, { output: {}, pinned: true })]).nodes.a.deferredFor).toBeNull();
    expect(applyEvents(emptyRun("x"), [...base(), ev("NodeFailed", "a", 1, { error: { type: "InputTooLarge", message: "m" } })]).nodes.a.deferredFor).toBeNull();
  });

  it("is cleared on every node when the execution ends", () => {
    const run = applyEvents(emptyRun("x"), [
      ...started(["a", "b"]),
      ev("NodeDeferred", "a", 1, share),
      ev("ExecutionFinished", null, null, { status: "cancelled" }),
    ]);
    expect(run.nodes.a.deferredFor).toBeNull();
    expect(run.status).toBe("cancelled");
  });

  it("keeps a retrying node retrying while its next attempt waits, until that attempt is ready", () => {
    let run = applyEvents(emptyRun("x"), [
      ...started(["fetch"]),
      ev("NodeReady", "fetch", 1, { input: {} }),
      ev("NodeStarted", "fetch", 1),
      ev("NodeFailed", "fetch", 1, { error: { type: "HttpServerError", message: "503" } }),
      ev("NodeRetryScheduled", "fetch", 1, { delay_ms: 200 }),
      ev("NodeDeferred", "fetch", 2, share),
    ]);
    expect(run.nodes.fetch.status).toBe("retrying");
    expect(run.nodes.fetch.deferredFor).toEqual(share);
    expect(statusLabel(run.nodes.fetch)).toBe("retrying (attempt 2 next)");
    run = applyEvent(run, ev("NodeReady", "fetch", 2, { input: {} }));
    expect(run.nodes.fetch.status).toBe("queued");
    expect(run.nodes.fetch.deferredFor).toBeNull();
  });

  it("changes nothing for a deferral of an attempt already made ready (an old attempt)", () => {
    const run = applyEvents(emptyRun("x"), [...started(["a"]), ev("NodeReady", "a", 1, { input: {} }), ev("NodeStarted", "a", 1)]);
    const after = applyEvent(run, ev("NodeDeferred", "a", 1, share));
    expect(after.nodes).toBe(run.nodes);
    expect(after.nodes.a.deferredFor).toBeNull();
    expect(after.nodes.a.status).toBe("running");
  });

  it("changes nothing for a deferral of a finished node", () => {
    const ends = [
      () => ev("NodeSucceeded", "a", 1, { output: {} }),
      () => ev("NodeSkipped", "a", null, { reason: "branch_not_taken" }),
      () => ev("NodeCancelled", "a", 1),
    ];
    for (const end of ends) {
      const run = applyEvents(emptyRun("x"), [...started(["a"]), ev("NodeReady", "a", 1, { input: {} }), end()]);
      const after = applyEvent(run, ev("NodeDeferred", "a", 2, share));
      expect(after.lastSeq).toBe(5);
      expect(after.nodes).toBe(run.nodes);
      expect(after.nodes.a.deferredFor).toBeNull();
    }
  });

  it("changes nothing when the same event is applied twice (a replay after reconnect)", () => {
    const events = [...started(["a"]), ev("NodeDeferred", "a", 1, share)];
    const run = applyEvents(emptyRun("x"), events);
    expect(applyEvent(run, events[2])).toBe(run);
    const ready = applyEvent(run, ev("NodeReady", "a", 1, { input: {} }));
    expect(applyEvents(ready, events)).toBe(ready); // the deferral again, after the ready
    expect(ready.nodes.a.deferredFor).toBeNull();
  });

  it("shows in the timeline only for the steps between the deferral and the ready", () => {
    const steps = timeline("x", [
      ...started(["a"]),
      ev("NodeDeferred", "a", 1, share),
      ev("NodeReady", "a", 1, { input: {} }),
    ]);
    expect(steps.map((s) => s.nodes.a?.deferredFor?.key ?? null)).toEqual([null, null, "alice", null]);
  });

  it("lists the deferral with its attempt", () => {
    const events = [...started(["a"]), ev("NodeDeferred", "a", 1, share)];
    expect(nodeAttempts(events, "a")).toEqual([
      { attempt: 1, deferredAt: events[2].time, queuedAt: null, startedAt: null, finishedAt: null, result: null, error: null, retryDelayMs: null },
    ]);
  });

  it("says in words whose share is full", () => {
    expect(deferredLabel(share)).toBe("Waiting for a runner: alice has 64 nodes queued or running (their share)");
    expect(deferredLabel({ key: "bob", limit: 1 })).toBe("Waiting for a runner: bob has 1 node queued or running (their share)");
  });
});

describe("runFromExecution and timeline", () => {
  it("seeds from the projection and continues with later events only", () => {
    const run = runFromExecution({
      id: "x", workflow_id: "w", workflow_version: 1, mode: "trigger", trigger: "t", node: null,
      status: "running", created_at: "c", started_at: "s", finished_at: null, error: null, last_seq: 5,
      nodes: {
        t: { status: "succeeded", attempts: 1, started_at: null, finished_at: null, output: { main: [{}] }, error: null, skip_reason: null },
        n: { status: "queued", attempts: 1, started_at: null, finished_at: null, output: null, error: null, skip_reason: null },
      },
    });
    expect(run.plan).toEqual(["t", "n"]);
    const same = applyEvent(run, { seq: 5, type: "NodeStarted", time: "t", execution_id: "x", node: "n", attempt: 1, data: {} });
    expect(same.nodes.n.status).toBe("queued");
    const next = applyEvent(run, { seq: 6, type: "NodeStarted", time: "t", execution_id: "x", node: "n", attempt: 1, data: {} });
    expect(next.nodes.n.status).toBe("running");
  });

  it("gives the graph's state after each event", () => {
    const events = [...started(["a"]), ev("NodeReady", "a", 1, { input: {} }), ev("NodeSucceeded", "a", 1, { output: {} }), ev("ExecutionFinished", null, null, { status: "succeeded" })];
    const steps = timeline("x", events);
    expect(steps.map((s) => s.nodes.a?.status ?? "-")).toEqual(["-", "pending", "queued", "succeeded", "succeeded"]);
    expect(steps.map((s) => s.status)).toEqual(["queued", "running", "running", "running", "succeeded"]);
  });
});

describe("nodeAttempts", () => {
  it("lists each attempt with its times, result, error and the retry delay after it", () => {
    const events = [
      ...started(["fetch"]),
      ev("NodeReady", "fetch", 1, { input: {} }),
      ev("NodeStarted", "fetch", 1),
      ev("NodeFailed", "fetch", 1, { error: { type: "HttpServerError", message: "503" } }),
      ev("NodeRetryScheduled", "fetch", 1, { delay_ms: 200 }),
      ev("NodeReady", "fetch", 2, { input: {} }),
      ev("NodeStarted", "fetch", 2),
      ev("NodeSucceeded", "fetch", 2, { output: {} }),
      ev("NodeFailed", "fetch", 2, { error: { type: "Late", message: "ignored" } }),
    ];
    const rows = nodeAttempts(events, "fetch");
    expect(rows.map((r) => [r.attempt, r.result, r.error?.type ?? null, r.retryDelayMs])).toEqual([
      [1, "failed", "HttpServerError", 200],
      [2, "succeeded", null, null],
    ]);
    expect(rows[1].startedAt).toBe(events[7].time);
    expect(rows[1].finishedAt).toBe(events[8].time);
    expect(nodeAttempts(events, "other")).toEqual([]);
  });
});
