import { duration, formatTime } from "../format";
import type { NodeRunState } from "../state/executionState";
import { ItemsView } from "./ItemsView";
import { NodeStatusBadge } from "./StatusBadge";

export function NodeResults({ state }: { state: NodeRunState | undefined }) {
  if (!state)
    return (
      <p className="muted">
        This node has not run in the execution shown. Run the workflow from its trigger, or
        right-click the node and choose “Execute node”.
      </p>
    );
  return (
    <div className="node-results">
      <dl className="facts">
        <dt>Status</dt>
        <dd>
          <NodeStatusBadge node={state} />
          {state.pinned && <span className="muted"> (pinned output)</span>}
        </dd>
        <dt>Attempts</dt>
        <dd>{state.attempts}</dd>
        <dt>Started</dt>
        <dd>{formatTime(state.startedAt)}</dd>
        <dt>Finished</dt>
        <dd>{formatTime(state.finishedAt)}</dd>
        <dt>Duration</dt>
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
          {state.error.stack && (
            <details open>
              <summary>Stack trace</summary>
              <pre className="code" tabIndex={0}>{state.error.stack}</pre>
            </details>
          )}
        </section>
      )}
      <ItemsView label="Input" data={state.input} />
      <ItemsView label="Output" data={state.output} />
      {!state.input && !state.output && !state.error && <p className="muted">No data recorded yet.</p>}
    </div>
  );
}
