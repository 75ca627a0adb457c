// Two executions of a workflow side by side: each node's status and duration in both, and how
// its output changed (items added, removed, changed, and the fields of a changed item).
import { useEffect, useRef, useState } from "react";
import type { Api } from "../api";
import { compareExecutions, summary, type NodeComparison } from "../compareRuns";
import { formatTime } from "../format";
import type { Execution, JsonValue } from "../types";
import { StatusBadge } from "./StatusBadge";

function ms(value: number | null): string {
  if (value === null) return "—";
  return value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(2)} s`;
}

function json(value: JsonValue | undefined): string {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function OutputCell({ row }: { row: NodeComparison }) {
  const diff = row.output;
  if (diff.stored || !diff.items.length) return <span className={diff.stored ? "muted" : undefined}>{summary(diff)}</span>;
  return (
    <details>
      <summary>{summary(diff)}</summary>
      <ul className="diff-list">
        {diff.items.map((item) => (
          <li key={`${item.port}-${item.index}`} className={`diff-${item.change}`}>
            {item.port}[{item.index}] {item.change}
            {item.fields.length > 0 && (
              <ul>
                {item.fields.map((f) => (
                  <li key={f.field} className={`diff-${f.change}`}>
                    <code>{f.field}</code>:{" "}
                    {f.change === "added" ? `added ${json(f.after)}` : f.change === "removed" ? `removed (was ${json(f.before)})` : `${json(f.before)} → ${json(f.after)}`}
                  </li>
                ))}
              </ul>
            )}
          </li>
        ))}
      </ul>
    </details>
  );
}

export function CompareDialog({ api, ids, onClose }: { api: Api; ids: [string, string]; onClose: () => void }) {
  const [runs, setRuns] = useState<[Execution, Execution] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const close = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    Promise.all(ids.map((id) => api.getExecution(id))).then(
      ([a, b]) => {
        // The older one first, so that the diff reads as "what changed since".
        const older = (a.created_at ?? "") <= (b.created_at ?? "");
        setRuns(older ? [a, b] : [b, a]);
        setTimeout(() => close.current?.focus(), 0);
      },
      (e: Error) => setError(e.message),
    );
  }, [ids[0], ids[1]]);

  const rows = runs ? compareExecutions(runs[0], runs[1]) : [];
  return (
    <div className="modal-backdrop" onKeyDown={(e) => e.key === "Escape" && onClose()}>
      <div className="modal wide card" role="dialog" aria-modal="true" aria-labelledby="compare-title">
        <h2 id="compare-title">Compare two executions</h2>
        {error && (
          <p className="error" role="alert">
            Cannot compare: {error}
          </p>
        )}
        {!runs && !error && <p className="muted">Loading…</p>}
        {runs && (
          <div className="table-scroll">
            <table className="table compare">
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  {runs.map((r, i) => (
                    <th scope="col" key={r.id}>
                      {i === 0 ? "First" : "Second"}: {formatTime(r.created_at)} <StatusBadge status={r.status} />
                    </th>
                  ))}
                  <th scope="col">Duration</th>
                  <th scope="col">Output (second against first)</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={row.node} data-node={row.node} className={row.sameStatus ? undefined : "differs"}>
                    <th scope="row">{row.node}</th>
                    <td>{row.first ? <StatusBadge status={row.first.status} /> : <span className="muted">not in this run</span>}</td>
                    <td>{row.second ? <StatusBadge status={row.second.status} /> : <span className="muted">not in this run</span>}</td>
                    <td>
                      {ms(row.firstMs)} → {ms(row.secondMs)}
                    </td>
                    <td>
                      <OutputCell row={row} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <div className="modal-actions">
          <button type="button" ref={close} onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </div>
  );
}
