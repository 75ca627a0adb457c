import type { ReactNode } from "react";
import { clockTime, duration, formatTime } from "../format";
import { deferredLabel, nodeAttempts, type NodeRunState } from "../state/executionState";
import { holdsReference } from "../portItems";
import type { ExecutionEvent, PortItems } from "../types";
import { StatusBadge } from "./StatusBadge";
import { StackTrace } from "./StackTrace";
import { ItemsView } from "./ItemsView";
import { NodeStatusBadge } from "./StatusBadge";
import { navigate, routePath, type Route } from "../router";

/** The executions an `execute_workflow` node started (its latest call), from its events. */
export function childExecutions(events: ExecutionEvent[], node: string): { id: string; index: number; route: Route | null }[] {
  const calls = events.filter((e) => e.type === "WorkflowCalled" && e.node === node);
  const call = calls[calls.length - 1];
  if (!call) return [];
  const workflowId = typeof call.data.workflow_id === "string" ? call.data.workflow_id : null;
  return events
    .filter((e) => e.type === "ChildExecutionStarted" && e.node === node && e.attempt === call.attempt)
    .map((e) => {
      const id = String(e.data.child);
      return { id, index: Number(e.data.index), route: workflowId ? { page: "workflow", workflowId, executionId: id } : null };
    });
}

/** Who started this execution, when an `execute_workflow` node of another one did. */
export function parentExecution(events: ExecutionEvent[]): { id: string; node: string } | null {
  const request = events.find((e) => e.type === "ExecutionRequested");
  const parent = request?.data.parent_execution;
  return typeof parent === "string" ? { id: parent, node: String(request?.data.parent_node) } : null;
}

function RouteLink({ route, children }: { route: Route; children: ReactNode }) {
  return (
    <a
      href={routePath(route)}
      onClick={(e) => {
        e.preventDefault();
        navigate(route);
      }}
    >
      {children}
    </a>
  );
}

function Children({ events, node }: { events: ExecutionEvent[]; node: string }) {
  const children = childExecutions(events, node);
  if (children.length === 0) return null;
  return (
    <section aria-label="Child executions">
      <h4>Child executions</h4>
      <ol className="child-executions">
        {children.map((c) => (
          <li key={c.id}>
            item {c.index}:{" "}
            {c.route ? <RouteLink route={c.route}>{c.id}</RouteLink> : <code>{c.id}</code>}
          </li>
        ))}
      </ol>
    </section>
  );
}

function Attempts({ events, node }: { events: ExecutionEvent[]; node: string }) {
  const rows = nodeAttempts(events, node);
  if (rows.length === 0) return null;
  return (
    <section aria-label="Attempts">
      <h4>Attempts</h4>
      <div className="table-scroll">
        <table className="table attempts">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Result</th>
              <th scope="col">Started</th>
              <th scope="col">Took</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.attempt}>
                <td>{r.attempt}</td>
                <td>
                  {r.result ? (
                    <StatusBadge status={r.result} />
                  ) : (
                    <span className="muted">{r.deferredAt && !r.queuedAt ? "waiting for a runner" : "in progress"}</span>
                  )}
                  {r.error && <div className="error small">{r.error.type}: {r.error.message}</div>}
                  {r.retryDelayMs !== null && <div className="muted small">retry in {r.retryDelayMs} ms</div>}
                </td>
                <td>{clockTime(r.startedAt ?? r.queuedAt ?? r.deferredAt)}</td>
                <td>{r.startedAt ? duration(r.startedAt, r.finishedAt) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function NodeResults({
  node,
  state,
  events,
  onPin,
}: {
  node: string;
  state: NodeRunState | undefined;
  events: ExecutionEvent[];
  /** Pins this output in the draft (the editor, not a past run's read-only view). */
  onPin?: (output: PortItems) => void;
}) {
  const parent = parentExecution(events);
  if (!state)
    return (
      <p className="muted">
        This node has not run in the execution shown. Run the workflow from its trigger, or
        right-click the node and choose “Execute node”.
      </p>
    );
  return (
    <div className="node-results">
      {parent && (
        <p className="muted">
          This execution was started by node <code>{parent.node}</code> of execution{" "}
          <RouteLink route={{ page: "execution", executionId: parent.id }}>{parent.id}</RouteLink>.
        </p>
      )}
      <dl className="facts">
        <dt>Status</dt>
        <dd>
          <NodeStatusBadge node={state} />
          {state.pinned && <span className="muted"> (pinned output)</span>}
          {state.reusedFrom && (
            <span className="muted">
              {" "}
              (not run: output reused from execution{" "}
              <RouteLink route={{ page: "execution", executionId: state.reusedFrom }}>{state.reusedFrom}</RouteLink>)
            </span>
          )}
          {state.deferredFor && (
            <div className="notice waiting" title="Its attempt is made ready when one of theirs ends.">
              <span aria-hidden="true">⏸ </span>
              {deferredLabel(state.deferredFor)}
            </div>
          )}
        </dd>
        <dt>Attempts</dt>
        <dd>{state.attempts}</dd>
        <dt>{state.attempts > 1 ? "Last attempt started" : "Started"}</dt>
        <dd>{formatTime(state.startedAt)}</dd>
        <dt>Finished</dt>
        <dd>{formatTime(state.finishedAt)}</dd>
        <dt>{state.attempts > 1 ? "Last attempt took" : "Duration"}</dt>
        <dd>{state.startedAt ? duration(state.startedAt, state.finishedAt) : "—"}</dd>
        {state.retryDelayMs !== null && state.status === "retrying" && (
          <>
            <dt>Next attempt</dt>
            <dd>in {state.retryDelayMs} ms</dd>
          </>
        )}
      </dl>
      {state.error && (
        <section className="error-box" aria-label="Error">
          <h4>
            ✕ {state.error.type}: {state.error.message}
          </h4>
          {state.error.stack && <StackTrace stack={state.error.stack} />}
        </section>
      )}
      <Attempts events={events} node={node} />
      <Children events={events} node={node} />
      <ItemsView label="Input" data={state.input} />
      {onPin && state.output && (
        <p>
          {holdsReference(state.output) ? (
            <span className="muted">A large output (stored by reference) cannot be pinned.</span>
          ) : (
            <button type="button" onClick={() => onPin(state.output!)}>
              <span aria-hidden="true">📌 </span>Pin this output
            </button>
          )}
        </p>
      )}
      <ItemsView label="Output" data={state.output} />
      {!state.input && !state.output && !state.error && <p className="muted">No data recorded yet.</p>}
    </div>
  );
}
