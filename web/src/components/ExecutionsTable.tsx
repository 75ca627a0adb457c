// A list of executions, newest first, a page at a time (the API's cursor), filtered by status:
// a workflow's own (its editor's Executions tab) or every workflow's (the Executions page).
import { useEffect, useState } from "react";
import type { Api } from "../api";
import { duration, formatTime } from "../format";
import type { ExecutionStatus, ExecutionSummary } from "../types";
import { FINISHED, RETRYABLE } from "../rerun";
import { CompareDialog } from "./CompareDialog";
import { RerunDialog, startRetry } from "./RerunDialog";
import { StatusBadge } from "./StatusBadge";

const STATUSES: ExecutionStatus[] = ["queued", "running", "succeeded", "partial", "failed", "cancelled", "timed_out"];
export const PAGE_SIZE = 50;

export function ExecutionsTable({
  api,
  workflowId,
  workflowName,
  refresh,
  current,
  onOpen,
}: {
  api: Api;
  /** Only this workflow's executions; without it, every workflow's, with a Workflow column. */
  workflowId?: string;
  /** The name shown for a workflow id in that column. */
  workflowName?: (id: string | null) => string;
  refresh?: unknown;
  current?: string | null;
  onOpen: (execution: ExecutionSummary) => void;
}) {
  const [status, setStatus] = useState<ExecutionStatus | "">("");
  const [items, setItems] = useState<ExecutionSummary[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [rerunning, setRerunning] = useState<ExecutionSummary | null>(null);
  /** Executions picked to compare (one workflow's only): at most two, the latest two kept. */
  const [picked, setPicked] = useState<string[]>([]);
  const [comparing, setComparing] = useState<[string, string] | null>(null);
  const comparable = workflowId !== undefined;

  function pick(id: string, on: boolean) {
    setPicked((ids) => (on ? [...ids.filter((x) => x !== id), id].slice(-2) : ids.filter((x) => x !== id)));
  }

  useEffect(() => {
    let live = true;
    api.listExecutions({ workflowId, status: status || undefined, limit: PAGE_SIZE }).then(
      (page) => {
        if (!live) return;
        setItems(page.items);
        setNext(page.next_cursor);
        setError(null);
      },
      (e) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [workflowId, status, refresh]);

  async function loadMore() {
    if (!next) return;
    setLoadingMore(true);
    try {
      const page = await api.listExecutions({ workflowId, status: status || undefined, cursor: next, limit: PAGE_SIZE });
      // A newer page reload may have put some of these in already.
      setItems((shown) => {
        const known = new Set((shown ?? []).map((e) => e.id));
        return [...(shown ?? []), ...page.items.filter((e) => !known.has(e.id))];
      });
      setNext(page.next_cursor);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setLoadingMore(false);
    }
  }

  async function retry(e: ExecutionSummary) {
    try {
      await startRetry(api, e);
    } catch (err) {
      setError(`Cannot retry: ${(err as Error).message}`);
    }
  }

  return (
    <div className="executions">
      <div className="panel-tools">
        <label>
          Status{" "}
          <select value={status} onChange={(e) => setStatus(e.target.value as ExecutionStatus | "")}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
        {items && (
          <span className="muted" aria-live="polite">
            {items.length} shown{next ? ", more older" : ""}
          </span>
        )}
        {comparable && items && items.length > 1 && (
          <button type="button" disabled={picked.length !== 2} onClick={() => setComparing([picked[0], picked[1]])}>
            {picked.length === 2 ? "Compare the 2 picked" : `Pick 2 to compare (${picked.length} picked)`}
          </button>
        )}
      </div>
      {error && <p className="error pad">{error}</p>}
      {!items && !error && <p className="muted pad">Loading…</p>}
      {items && !items.length && <p className="muted pad">{status ? `No ${status.replace("_", " ")} executions.` : "No executions yet."}</p>}
      {items && items.length > 0 && (
        <div className="table-scroll">
          <table className="table history">
            <thead>
              <tr>
                {comparable && (
                  <th scope="col">
                    <span className="sr-only">Compare</span>
                  </th>
                )}
                <th scope="col">Status</th>
                {!workflowId && <th scope="col">Workflow</th>}
                <th scope="col">Started</th>
                <th scope="col">Duration</th>
                <th scope="col">Ran</th>
                <th scope="col">Version</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.id} className={e.id === current ? "current" : undefined} data-execution={e.id}>
                  {comparable && (
                    <td>
                      <input
                        type="checkbox"
                        checked={picked.includes(e.id)}
                        onChange={(ev) => pick(e.id, ev.target.checked)}
                        aria-label={`Compare execution of ${formatTime(e.created_at)}`}
                      />
                    </td>
                  )}
                  <td>
                    <StatusBadge status={e.status} />
                  </td>
                  {!workflowId && <td>{workflowName ? workflowName(e.workflow_id) : e.workflow_id ?? "inline"}</td>}
                  <td>{formatTime(e.started_at ?? e.created_at)}</td>
                  <td>{duration(e.started_at ?? e.created_at, e.finished_at)}</td>
                  <td>{e.mode === "node" ? `node ${e.node}` : `from ${e.trigger ?? "trigger"}`}</td>
                  <td>v{e.workflow_version ?? "?"}</td>
                  <td>
                    {e.id === current ? (
                      <span className="muted">shown</span>
                    ) : (
                      <button
                        type="button"
                        onClick={() => onOpen(e)}
                        disabled={!e.workflow_id}
                        aria-label={`Open execution of ${formatTime(e.created_at)}`}
                      >
                        Open
                      </button>
                    )}
                    {e.workflow_id && RETRYABLE.has(e.status) && (
                      <button type="button" onClick={() => void retry(e)} aria-label={`Retry execution of ${formatTime(e.created_at)}`}>
                        <span aria-hidden="true">↻ </span>Retry
                      </button>
                    )}
                    {e.workflow_id && FINISHED.has(e.status) && (
                      <button type="button" onClick={() => setRerunning(e)} aria-label={`Rerun from a node: execution of ${formatTime(e.created_at)}`}>
                        Rerun from…
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {next && (
            <button type="button" className="load-more" onClick={() => void loadMore()} disabled={loadingMore}>
              {loadingMore ? "Loading…" : `Load ${PAGE_SIZE} older`}
            </button>
          )}
        </div>
      )}
      {comparing && <CompareDialog api={api} ids={comparing} onClose={() => setComparing(null)} />}
      {rerunning && (
        <RerunDialog api={api} executionId={rerunning.id} workflowId={rerunning.workflow_id} onClose={() => setRerunning(null)} />
      )}
    </div>
  );
}
