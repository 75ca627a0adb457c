import { useEffect, useState } from "react";
import type { Api } from "../api";
import { duration, formatTime } from "../format";
import type { ExecutionSummary } from "../types";
import { StatusBadge } from "./StatusBadge";

export function HistoryPanel({
  api,
  workflowId,
  refresh,
  current,
  onOpen,
}: {
  api: Api;
  workflowId: string;
  refresh: unknown;
  current: string | null;
  onOpen: (id: string) => void;
}) {
  const [items, setItems] = useState<ExecutionSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.listExecutions(workflowId).then(
      (page) => {
        setItems(page.items);
        setError(null);
      },
      (e) => setError(e.message),
    );
  }, [workflowId, refresh]);
  if (error) return <p className="error pad">{error}</p>;
  if (!items) return <p className="muted pad">Loading…</p>;
  if (!items.length) return <p className="muted pad">No executions yet.</p>;
  return (
    <div className="table-scroll">
      <table className="table history">
        <thead>
          <tr>
            <th scope="col">Status</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Ran</th>
            <th scope="col">Version</th>
            <th scope="col">
              <span className="sr-only">Open</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id} className={e.id === current ? "current" : undefined} data-execution={e.id}>
              <td>
                <StatusBadge status={e.status} />
              </td>
              <td>{formatTime(e.started_at ?? e.created_at)}</td>
              <td>{duration(e.started_at ?? e.created_at, e.finished_at)}</td>
              <td>{e.mode === "node" ? `node ${e.node}` : `from ${e.trigger ?? "trigger"}`}</td>
              <td>v{e.workflow_version ?? "?"}</td>
              <td>
                {e.id === current ? (
                  <span className="muted">shown</span>
                ) : (
                  <button type="button" onClick={() => onOpen(e.id)} aria-label={`Open execution of ${formatTime(e.created_at)}`}>
                    Open
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
