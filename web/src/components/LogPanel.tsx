import { useEffect, useRef, useState } from "react";
import type { Api } from "../api";
import { clockTime } from "../format";
import type { LogEntry } from "../types";

export function LogPanel({
  api,
  executionId,
  version,
  nodes,
}: {
  api: Api;
  executionId: string | null;
  /** Changes when the execution has news (its last seq): the logs are read again. */
  version: number;
  nodes: string[];
}) {
  const [logs, setLogs] = useState<LogEntry[]>([]);
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string | null>(null);
  const lastFetch = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const current = useRef(executionId);
  useEffect(() => {
    current.current = executionId;
    setLogs([]);
    setFilter("");
  }, [executionId]);

  useEffect(() => {
    if (!executionId) return;
    // At most one read every 500 ms while events stream in; the last one always happens.
    const fetchNow = () => {
      lastFetch.current = Date.now();
      api.logs(executionId).then(
        (l) => {
          if (current.current !== executionId) return; // an answer about the execution shown before
          setLogs(l);
          setError(null);
        },
        (e) => setError(e.message),
      );
    };
    if (timer.current) clearTimeout(timer.current);
    const wait = Math.max(0, 500 - (Date.now() - lastFetch.current));
    timer.current = setTimeout(fetchNow, wait);
    return () => {
      if (timer.current) clearTimeout(timer.current);
    };
  }, [executionId, version]);

  if (!executionId) return <p className="muted pad">Run the workflow to see its log here.</p>;
  const shown = filter ? logs.filter((l) => l.node === filter) : logs;
  const nodeNames = [...new Set([...nodes, ...logs.map((l) => l.node).filter((n): n is string => !!n)])];
  return (
    <div className="log-panel">
      <div className="panel-tools">
        <label htmlFor="log-filter">Node</label>
        <select id="log-filter" value={filter} onChange={(e) => setFilter(e.target.value)}>
          <option value="">All nodes</option>
          {nodeNames.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <span className="muted">
          {shown.length} line{shown.length === 1 ? "" : "s"}
        </span>
        {error && <span className="error">{error}</span>}
      </div>
      <div className="log-lines" role="log" aria-label="Execution log" tabIndex={0}>
        {shown.map((l, i) => (
          <div className={`log-line level-${l.level}`} key={`${l.seq ?? ""}-${i}`}>
            <time dateTime={l.time}>{clockTime(l.time)}</time>
            <span className="level">{l.level}</span>
            <span className="log-node">{l.node ?? "—"}</span>
            <span className="message">{l.message}</span>
          </div>
        ))}
      </div>
    </div>
  );
}
