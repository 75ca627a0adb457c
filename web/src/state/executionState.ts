// Folds an execution's event stream into the state the canvas shows: one status per node, the
// execution's status and its progress. It reads what the scheduler recorded and judges nothing:
// a failure's outcome (retried, or failed for good under the node's on_error) is its
// NodeFailureHandled, and the scheduler's NodeCancelled / NodeSkipped are its last word on a
// node. The rules are those of the one fold of a history (libs/contracts/.../history_fold.py):
// the first result of the current attempt wins, a done node never changes again, and an event
// at or below the last applied seq changes nothing (so a reconnect that repeats events is
// harmless).
import type {
  ErrorInfo,
  Execution,
  ExecutionEvent,
  ExecutionStatus,
  FailureOutcome,
  NodeStatus,
  PortItems,
} from "../types";
import { FINAL_EXECUTION_STATUSES } from "../types";

export interface NodeRunState {
  status: NodeStatus;
  /** The current (or last) attempt number; 0 before the first. */
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  input: PortItems | null;
  output: PortItems | null;
  error: ErrorInfo | null;
  skipReason: string | null;
  pinned: boolean;
  /** In a rerun, the execution whose recorded output this node kept instead of running. */
  reusedFrom: string | null;
  /** When a retry is scheduled: its delay. */
  retryDelayMs: number | null;
  /** Set while the node's next attempt, ready to run, waits for its user's share of the
   * runners (its ``NodeDeferred`` event); its status stays pending or retrying meanwhile. */
  deferredFor: DeferredFor | null;
  /** Failed for good: the scheduler's outcome (fail, continue, error_output); null while a
   * failure waits for its outcome, and for nodes that did not fail for good. */
  outcome: FailureOutcome | null;
}

/** A user's share of the runners a node's attempt waits on (its ``NodeDeferred`` event):
 * ``key`` (a user) has ``limit`` node attempts queued or running. */
export interface DeferredFor {
  key: string;
  limit: number;
}

/** The concurrency limit a queued execution waits on (its ``ExecutionQueued`` event): ``scope``
 * ``key`` (a user, a workflow) has ``limit`` executions running. */
export interface WaitingFor {
  scope: string;
  key: string;
  limit: number;
}

export interface RunState {
  executionId: string;
  status: ExecutionStatus;
  mode: string | null;
  trigger: string | null;
  node: string | null;
  lastSeq: number;
  /** Plan nodes in definition order; empty until the execution started. */
  plan: string[];
  nodes: Record<string, NodeRunState>;
  error: ErrorInfo | null;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  cancelRequested: boolean;
  /** Set while the execution, not started, waits for a slot of a concurrency limit. */
  waitingFor: WaitingFor | null;
}

const DONE: ReadonlySet<NodeStatus> = new Set(["succeeded", "skipped", "cancelled"]);
const ACTIVE: ReadonlySet<NodeStatus> = new Set(["queued", "running"]);
/** Node statuses that count as finished for the progress indicator. */
export const NODE_FINISHED: ReadonlySet<NodeStatus> = new Set([
  "succeeded",
  "failed",
  "skipped",
  "cancelled",
]);

export function emptyRun(executionId: string): RunState {
  return {
    executionId,
    status: "queued",
    mode: null,
    trigger: null,
    node: null,
    lastSeq: 0,
    plan: [],
    nodes: {},
    error: null,
    createdAt: null,
    startedAt: null,
    finishedAt: null,
    cancelRequested: false,
    waitingFor: null,
  };
}

function pendingNode(): NodeRunState {
  return {
    status: "pending",
    attempts: 0,
    startedAt: null,
    finishedAt: null,
    input: null,
    output: null,
    error: null,
    skipReason: null,
    pinned: false,
    reusedFrom: null,
    retryDelayMs: null,
    deferredFor: null,
    outcome: null,
  };
}

/** The state as of the API's projection (``GET /api/executions/{id}``); events after its
 * ``last_seq`` are then applied on top. */
export function runFromExecution(execution: Execution): RunState {
  const nodes: Record<string, NodeRunState> = {};
  for (const [name, n] of Object.entries(execution.nodes ?? {})) {
    nodes[name] = {
      ...pendingNode(),
      status: n.status,
      attempts: n.attempts,
      startedAt: n.started_at,
      finishedAt: n.finished_at,
      output: n.output,
      error: n.error,
      skipReason: n.skip_reason,
      pinned: n.pinned ?? false,
      outcome: n.outcome ?? null,
    };
  }
  return {
    ...emptyRun(execution.id),
    status: execution.status,
    mode: execution.mode,
    trigger: execution.trigger,
    node: execution.node,
    lastSeq: execution.last_seq,
    plan: Object.keys(nodes),
    nodes,
    error: execution.error,
    createdAt: execution.created_at,
    startedAt: execution.started_at,
    finishedAt: execution.finished_at,
  };
}

function resultCounts(node: NodeRunState, attempt: number): boolean {
  // A node still pending has had no attempt to fence against (pinned or reused outputs).
  if (node.status === "pending") return true;
  return ACTIVE.has(node.status) && attempt === node.attempts;
}

/** The node's state after one event, or null when the event does not change it. */
function nextNode(node: NodeRunState, event: ExecutionEvent): NodeRunState | null {
  const attempt = event.attempt ?? 0;
  const data = event.data ?? {};
  switch (event.type) {
    case "NodeDeferred":
      // The next attempt waits for its user's share of the runners; the status stays as it
      // is (pending, or retrying) until its NodeReady.
      if (attempt <= node.attempts || DONE.has(node.status)) return null;
      return {
        ...node,
        deferredFor: {
          key: String(data.key ?? ""),
          limit: typeof data.limit === "number" ? data.limit : 0,
        },
      };
    case "NodeReady":
      if (attempt <= node.attempts || DONE.has(node.status)) return null;
      return {
        ...node,
        status: "queued",
        attempts: attempt,
        input: data.input ?? null,
        startedAt: null,
        finishedAt: null,
        retryDelayMs: null,
        deferredFor: null,
      };
    case "NodeWaiting":
      // A wait starts at once on the scheduler's timer: queued and started in one event.
      if (attempt <= node.attempts || DONE.has(node.status)) return null;
      return {
        ...node,
        status: "running",
        attempts: attempt,
        input: data.input ?? null,
        startedAt: event.time,
        finishedAt: null,
        retryDelayMs: null,
        deferredFor: null,
      };
    case "NodeStarted":
      if (attempt !== node.attempts) return null;
      if (node.status === "queued") return { ...node, status: "running", startedAt: event.time };
      // Stored after its result (a side-effect-free node's start is not waited for): it
      // still says when the attempt started, and changes nothing else.
      if (node.startedAt == null && node.status !== "pending" && node.status !== "running") {
        return { ...node, startedAt: event.time };
      }
      return null;
    case "NodeSucceeded":
      if (!resultCounts(node, attempt)) return null;
      return {
        ...node,
        status: "succeeded",
        attempts: Math.max(node.attempts, attempt),
        finishedAt: event.time,
        output: data.output ?? null,
        pinned: Boolean(data.pinned),
        reusedFrom: typeof data.reused_from === "string" ? data.reused_from : null,
        error: null,
        deferredFor: null,
      };
    case "NodeFailed":
      if (!resultCounts(node, attempt)) return null;
      return {
        ...node,
        status: "failed",
        attempts: Math.max(node.attempts, attempt),
        finishedAt: event.time,
        error: data.error ?? null,
        deferredFor: null,
        outcome: null, // until the scheduler's NodeFailureHandled
      };
    case "NodeFailureHandled": {
      // The scheduler acted on the attempt's failure: shown failed since its NodeFailed (when
      // that came through), in flight, or its next attempt refused before it was made ready.
      const shown = node.status === "failed" && !node.outcome && attempt === node.attempts;
      const inFlight = ACTIVE.has(node.status) && attempt === node.attempts;
      const refused =
        (node.status === "pending" || node.status === "retrying") && attempt === node.attempts + 1;
      if (!(shown || inFlight || refused)) return null;
      const outcome = data.outcome as FailureOutcome;
      const error: ErrorInfo | null = data.error ?? node.error;
      const failed = {
        ...node,
        attempts: attempt,
        error,
        finishedAt: typeof data.failed_at === "string" ? data.failed_at : event.time,
        deferredFor: null,
      };
      if (outcome === "again" || outcome === "retry") {
        return { ...failed, status: "retrying", finishedAt: null };
      }
      const output = outcome === "error_output" ? errorOutput(node.input, error) : null;
      return { ...failed, status: "failed", outcome, output };
    }
    case "NodeRetryScheduled":
      if (attempt !== node.attempts || !["queued", "running", "failed"].includes(node.status))
        return null;
      return {
        ...node,
        status: "retrying",
        finishedAt: null,
        retryDelayMs: typeof data.delay_ms === "number" ? data.delay_ms : null,
      };
    case "NodeSkipped":
      // The scheduler's word: a failure it did not act on (stored after the run began to end)
      // has no outcome, and the skip stands.
      if (DONE.has(node.status) || (node.status === "failed" && node.outcome)) return null;
      return {
        ...node,
        status: "skipped",
        skipReason: data.reason ?? null,
        finishedAt: event.time,
        deferredFor: null,
      };
    case "NodeCancelled":
      // The scheduler's word too: a result stored after the run began to end, which it
      // ignored, is overruled by its cancel.
      if (
        node.status === "skipped" ||
        node.status === "cancelled" ||
        (node.status === "failed" && node.outcome) ||
        attempt < node.attempts
      )
        return null;
      return {
        ...node,
        status: "cancelled",
        finishedAt: event.time,
        deferredFor: null,
        output: null,
        pinned: false,
      };
    default:
      return null;
  }
}

/** ``on_error: error_output``: one error item per input item on the ``error`` port (one with
 * an empty ``item`` when there was no input), as the scheduler delivers it downstream. */
function errorOutput(input: PortItems | null, error: ErrorInfo | null): PortItems {
  const summary = { type: error?.type ?? "", message: error?.message ?? "" };
  const items = Object.values(input ?? {}).flat();
  return { error: (items.length ? items : [{}]).map((item) => ({ error: summary, item })) };
}

/** The run after one event. Pure: the given state is not changed. */
export function applyEvent(state: RunState, event: ExecutionEvent): RunState {
  if (event.seq <= state.lastSeq) return state; // already applied (a reconnect repeats nothing)
  const next: RunState = { ...state, lastSeq: event.seq };
  const data = event.data ?? {};
  switch (event.type) {
    case "ExecutionRequested":
      return {
        ...next,
        mode: data.mode ?? "trigger",
        trigger: data.trigger ?? null,
        node: event.node ?? data.node ?? null,
        createdAt: next.createdAt ?? event.time,
      };
    case "ExecutionCancelRequested":
      return { ...next, cancelRequested: true };
    case "ExecutionQueued":
      // Only an execution not started yet waits for a slot.
      if (state.status !== "queued") return next;
      return {
        ...next,
        waitingFor: {
          scope: String(data.scope ?? ""),
          key: String(data.key ?? ""),
          limit: typeof data.limit === "number" ? data.limit : 0,
        },
      };
    case "ExecutionStarted": {
      if (state.status !== "queued") return { ...next, waitingFor: null };
      const plan: string[] = Array.isArray(data.plan) ? data.plan : [];
      const nodes = { ...state.nodes };
      for (const name of plan) nodes[name] ??= pendingNode();
      return { ...next, status: "running", startedAt: event.time, plan, nodes, waitingFor: null };
    }
    case "ExecutionFinished":
      if (FINAL_EXECUTION_STATUSES.has(state.status)) return { ...next, waitingFor: null };
      return {
        ...next,
        status: data.status ?? "failed",
        error: data.error ?? null,
        finishedAt: event.time,
        waitingFor: null,
        nodes: withoutDeferrals(state.nodes), // nothing waits for a runner once it ended
      };
  }
  if (FINAL_EXECUTION_STATUSES.has(state.status) || !event.node) return next;
  const node = state.nodes[event.node];
  if (!node) return next; // not a plan node of this execution
  const changed = nextNode(node, event);
  if (!changed) return next;
  return { ...next, nodes: { ...state.nodes, [event.node]: changed } };
}

function withoutDeferrals(nodes: Record<string, NodeRunState>): Record<string, NodeRunState> {
  if (!Object.values(nodes).some((n) => n.deferredFor)) return nodes;
  const cleared: Record<string, NodeRunState> = {};
  for (const [name, n] of Object.entries(nodes)) cleared[name] = n.deferredFor ? { ...n, deferredFor: null } : n;
  return cleared;
}

export function applyEvents(state: RunState, events: Iterable<ExecutionEvent>): RunState {
  let current = state;
  for (const event of events) current = applyEvent(current, event);
  return current;
}

export function isFinished(state: RunState): boolean {
  return FINAL_EXECUTION_STATUSES.has(state.status);
}

export interface Progress {
  done: number;
  total: number;
  /** 0..1 */
  fraction: number;
}

export function progress(state: RunState): Progress {
  const total = state.plan.length;
  const done = state.plan.filter((n) => NODE_FINISHED.has(state.nodes[n]?.status)).length;
  const fraction = isFinished(state) ? 1 : total === 0 ? 0 : done / total;
  return { done, total, fraction };
}

/** The words shown next to a node's colour, so that state is never colour alone. */
export function statusLabel(node: NodeRunState): string {
  switch (node.status) {
    case "retrying":
      return `retrying (attempt ${node.attempts + 1} next)`;
    case "queued":
    case "running":
      return node.attempts > 1 ? `${node.status} (attempt ${node.attempts})` : node.status;
    case "failed":
      return node.attempts > 1 ? `failed after ${node.attempts} attempts` : "failed";
    case "skipped":
      return node.skipReason ? `skipped (${node.skipReason.replace(/_/g, " ")})` : "skipped";
    default:
      return node.status;
  }
}

/** The words for a wait on a concurrency limit: "Waiting: workflow limit of 1 running execution
 * reached". A user limit is the one of the user who asked for the execution (its key), who is
 * not always the one looking at it, so the key is named. */
export function waitingLabel(w: WaitingFor): string {
  const running = `${w.limit} running execution${w.limit === 1 ? "" : "s"}`;
  switch (w.scope) {
    case "workflow":
      return `Waiting: workflow limit of ${running} reached`;
    case "user":
      return `Waiting: user limit of ${running} reached (${w.key})`;
    default:
      return `Waiting: ${w.scope} limit of ${running} reached (${w.key})`;
  }
}

/** The words for a node's attempt waiting for its user's share of the runners: "Waiting for a
 * runner: alice has 64 nodes queued or running (their share)". The user is the one who asked
 * for the execution, not always the one looking at it, so the key is named. */
export function deferredLabel(d: DeferredFor): string {
  return `Waiting for a runner: ${d.key} has ${d.limit} node${d.limit === 1 ? "" : "s"} queued or running (their share)`;
}

/** The runs's state after each of ``events``: step i is the state after events[0..i]. */
export function timeline(executionId: string, events: ExecutionEvent[]): RunState[] {
  const steps: RunState[] = [];
  let state = emptyRun(executionId);
  for (const event of events) {
    state = applyEvent(state, event);
    steps.push(state);
  }
  return steps;
}

export interface AttemptRecord {
  attempt: number;
  /** When the attempt, ready to run, was deferred for its user's share of the runners. */
  deferredAt: string | null;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  result: "succeeded" | "failed" | "cancelled" | null;
  error: ErrorInfo | null;
  /** The delay before the next attempt, when one was scheduled after this one. */
  retryDelayMs: number | null;
}

/** One row per attempt of ``node``, from its events (the first result of an attempt counts). */
export function nodeAttempts(events: ExecutionEvent[], node: string): AttemptRecord[] {
  const byAttempt = new Map<number, AttemptRecord>();
  const row = (attempt: number) => {
    let r = byAttempt.get(attempt);
    if (!r) {
      r = { attempt, deferredAt: null, queuedAt: null, startedAt: null, finishedAt: null, result: null, error: null, retryDelayMs: null };
      byAttempt.set(attempt, r);
    }
    return r;
  };
  for (const e of events) {
    if (e.node !== node || !e.attempt) continue;
    const r = row(e.attempt);
    switch (e.type) {
      case "NodeDeferred":
        r.deferredAt ??= e.time;
        break;
      case "NodeReady":
        r.queuedAt ??= e.time;
        break;
      case "NodeWaiting":
        r.queuedAt ??= e.time;
        r.startedAt ??= e.time;
        break;
      case "NodeStarted":
        r.startedAt ??= e.time;
        break;
      case "NodeSucceeded":
      case "NodeFailed":
      case "NodeCancelled":
        if (r.result) break;
        r.result = e.type === "NodeSucceeded" ? "succeeded" : e.type === "NodeFailed" ? "failed" : "cancelled";
        r.finishedAt = e.time;
        r.error = e.type === "NodeFailed" ? (e.data?.error ?? null) : null;
        break;
      case "NodeRetryScheduled":
        r.retryDelayMs = typeof e.data?.delay_ms === "number" ? e.data.delay_ms : null;
        break;
    }
  }
  return [...byAttempt.values()].sort((a, b) => a.attempt - b.attempt);
}
