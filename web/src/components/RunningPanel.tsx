// Every workflow's queued and running executions, read again every 2 s (running.ts says why a
// poll), each with Open and Cancel (asked first); a row leaves once its execution has ended.
import { useEffect, useState } from "react";
import type { Api } from "../api";
import { duration, formatTime } from "../format";
import { RUNNING_POLL_MS, runningList } from "../running";
import type { ExecutionSummary } from "../types";
import { StatusBadge } from "./StatusBadge";

export function RunningPanel({
  api,
  workflowName,
  onOpen,
}: {
  api: Api;
  workflowName: (id: string | null) => string;
  onOpen: (execution: ExecutionSummary) => void;
}) {
  const [items, setItems] = useState<ExecutionSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  /** The execution whose Cancel asks "are you sure?". */
  const [asking, setAsking] = useState<string | null>(null);
  const [cancelling, setCancelling] = useState<Set<string>>(new Set());
  const [, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    async function read() {
      try {
        const [queued, running] = await Promise.all([
          api.listExecutions({ status: "queued", limit: 50 }),
          api.listExecutions({ status: "running", limit: 50 }),
        ]);
        if (!live) return;
        setItems(runningList(queued.items, running.items));
        setError(null);
      } catch (e) {
        if (live) setError((e as Error).message);
      }
      if (live) timer = setTimeout(read, RUNNING_POLL_MS);
    }
    void read();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [api]);

  // The elapsed times count up between reads.
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);

  async function cancel(id: string) {
    setAsking(null);
    setCancelling((s) => new Set(s).add(id));
    try {
      await api.cancel(id);
    } catch (e) {
      setError(`Cannot cancel: ${(e as Error).message}`);
      setCancelling((s) => {
        const rest = new Set(s);
        rest.delete(id);
        return rest;
      });
    }
  }

  return (
    <section className="running-panel" aria-labelledby="running-title">
      <h2 id="running-title">
        Running now{items ? ` (${items.length})` : ""}
      </h2>
      {error && (
        <p className="error pad" role="alert">
          {error}
        </p>
      )}
      {!items && !error && <p className="muted pad">Loading…</p>}
      {items && !items.length && <p className="muted pad">Nothing is running.</p>}
      {items && items.length > 0 && (
        <div className="table-scroll">
          <table className="table running" aria-label="Running executions">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Workflow</th>
                <th scope="col">Started</th>
                <th scope="col">Running for</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.id} data-execution={e.id}>
                  <td>
                    <StatusBadge status={e.status} />
                  </td>
                  <td>{workflowName(e.workflow_id)}</td>
                  <td>{formatTime(e.started_at ?? e.created_at)}</td>
                  <td>{duration(e.started_at ?? e.created_at, null)}</td>
                  <td>
                    <button type="button" onClick={() => onOpen(e)} disabled={!e.workflow_id} aria-label={`Open running execution of ${formatTime(e.created_at)}`}>
                      Open
                    </button>{" "}
                    {cancelling.has(e.id) ? (
                      <span className="muted">cancelling…</span>
                    ) : asking === e.id ? (
                      <span role="group" aria-label="Cancel this execution?">
                        Cancel it?{" "}
                        <button type="button" className="danger" onClick={() => void cancel(e.id)}>
                          Yes, cancel
                        </button>{" "}
                        <button type="button" onClick={() => setAsking(null)}>
                          No
                        </button>
                      </span>
                    ) : (
                      <button type="button" className="danger-ghost" onClick={() => setAsking(e.id)} aria-label={`Cancel execution of ${formatTime(e.created_at)}`}>
                        ■ Cancel
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
