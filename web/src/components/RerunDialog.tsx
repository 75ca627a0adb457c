// Rerunning a finished execution: "Retry" (from its failed node) and "Rerun from a node" (a
// choice among its nodes). Either opens the new execution, which is followed live.
import { useEffect, useRef, useState } from "react";
import type { Api } from "../api";
import { retryFrom } from "../rerun";
import { navigate } from "../router";
import type { Execution } from "../types";

/** Starts the rerun and opens it in its workflow's read-only view (a rerun keeps the
 * workflow and version of the execution it reruns). */
export async function startRerun(api: Api, execution: { id: string; workflow_id: string | null }, fromNode: string) {
  const { id } = await api.rerun(execution.id, fromNode);
  if (execution.workflow_id) navigate({ page: "workflow", workflowId: execution.workflow_id, executionId: id });
  return id;
}

/** Retries a finished execution from the node it failed at (retryFrom). */
export async function startRetry(api: Api, execution: { id: string; workflow_id: string | null }) {
  const full = await api.getExecution(execution.id);
  const from = retryFrom(full);
  if (!from) throw new Error("this execution ran no node");
  return startRerun(api, execution, from);
}

export function RerunDialog({
  api,
  executionId,
  workflowId,
  initialNode,
  onClose,
}: {
  api: Api;
  executionId: string;
  workflowId: string | null;
  /** The node chosen at first (the one the menu was opened on); else the retry's node. */
  initialNode?: string;
  onClose: () => void;
}) {
  const [execution, setExecution] = useState<Execution | null>(null);
  const [node, setNode] = useState(initialNode ?? "");
  const [error, setError] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const select = useRef<HTMLSelectElement>(null);

  useEffect(() => {
    api.getExecution(executionId).then(
      (e) => {
        setExecution(e);
        setNode((n) => n || retryFrom(e) || "");
        setTimeout(() => select.current?.focus(), 0);
      },
      (e: Error) => setError(e.message),
    );
  }, [executionId]);

  async function rerun() {
    setStarting(true);
    try {
      await startRerun(api, { id: executionId, workflow_id: workflowId }, node);
      onClose();
    } catch (e) {
      setError((e as Error).message);
      setStarting(false);
    }
  }

  return (
    <div className="modal-backdrop" onKeyDown={(e) => e.key === "Escape" && onClose()}>
      <div className="modal card" role="dialog" aria-modal="true" aria-labelledby="rerun-dialog-title">
        <h2 id="rerun-dialog-title">Rerun from a node</h2>
        <p className="muted">
          The chosen node and everything after it run again, as do nodes that failed or were cancelled or skipped; the
          other nodes keep the output they recorded. It runs the definition this execution ran with.
        </p>
        {execution ? (
          <>
            <label htmlFor="rerun-node">From node</label>{" "}
            <select id="rerun-node" ref={select} value={node} onChange={(e) => setNode(e.target.value)}>
              {Object.entries(execution.nodes).map(([id, n]) => (
                <option key={id} value={id}>
                  {id} ({n.status})
                </option>
              ))}
            </select>
          </>
        ) : (
          !error && <p className="muted">Loading…</p>
        )}
        {error && (
          <p className="error" role="alert">
            Cannot rerun: {error}
          </p>
        )}
        <div className="modal-actions">
          <button type="button" className="ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="primary" onClick={() => void rerun()} disabled={!execution || !node || starting}>
            {starting ? "Starting…" : "↻ Rerun"}
          </button>
        </div>
      </div>
    </div>
  );
}
