import { useEffect, useState } from "react";
import { clockTime, duration } from "../format";
import { isFinished, progress, waitingLabel, type RunState } from "../state/executionState";
import type { ConnectionState } from "../state/liveStream";
import { StatusBadge } from "./StatusBadge";

export function RunBar({
  run,
  connection,
  stepping,
  asOf = null,
  onCancel,
  cancelling,
  canCancel,
}: {
  run: RunState;
  connection: { state: ConnectionState; detail?: string } | null;
  stepping: boolean;
  /** When stepping through the timeline: the time of the step shown. The state and the
   * elapsed time are those of that moment, not of now. */
  asOf?: string | null;
  onCancel: () => void;
  cancelling: boolean;
  /** The execution itself (not the timeline step shown) is still running. */
  canCancel: boolean;
}) {
  const [, tick] = useState(0);
  const finished = isFinished(run);
  const still = finished || asOf !== null;
  useEffect(() => {
    if (still) return;
    const t = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(t);
  }, [still]);
  const p = progress(run);
  const what = run.mode === "node" ? `node ${run.node ?? ""}` : `from ${run.trigger ?? "trigger"}`;
  return (
    <div className="run-bar" role="status" aria-label="Execution status">
      <span className="run-title">
        Execution <code title={run.executionId}>{run.executionId.slice(-8)}</code> ({what})
      </span>
      <StatusBadge status={run.status} label={run.cancelRequested && !finished ? "cancelling" : undefined} />
      {run.waitingFor && run.status === "queued" && (
        <span className="notice waiting" title="It starts when one of the running executions ends.">
          <span aria-hidden="true">⏸ </span>
          {waitingLabel(run.waitingFor)}
        </span>
      )}
      <div className="progress" aria-label="Progress">
        <progress max={Math.max(1, p.total)} value={finished ? Math.max(1, p.total) : p.done} />
        <span>
          {p.done}/{p.total} nodes done
        </span>
      </div>
      <span className="muted" aria-label="Elapsed">
        {duration(run.startedAt ?? run.createdAt, run.finishedAt ?? asOf)}
      </span>
      {stepping && (
        <span className="notice">Timeline view: the state at {asOf ? clockTime(asOf) : "a past step"}</span>
      )}
      {connection?.state === "reconnecting" && (
        <span className="notice warn" role="alert">
          ⚠ Live updates disconnected — reconnecting… {connection.detail ?? ""}
        </span>
      )}
      {connection?.state === "refused" && <span className="notice warn">⚠ Live updates refused: {connection.detail}</span>}
      {run.error && finished && (
        <span className="error">
          {run.error.type}: {run.error.message}
        </span>
      )}
      {canCancel && (
        <button type="button" className="danger" onClick={onCancel} disabled={cancelling || run.cancelRequested}>
          ■ Cancel
        </button>
      )}
    </div>
  );
}
