import type { NodeRunState } from "../state/executionState";
import { statusLabel } from "../state/executionState";

/** An icon per state, so that state never depends on colour alone. */
export const STATUS_ICON: Record<string, string> = {
  pending: "○",
  queued: "◷",
  running: "⟳",
  retrying: "↻",
  succeeded: "✓",
  partial: "◐",
  failed: "✕",
  skipped: "⤼",
  cancelled: "⊘",
  timed_out: "⌛",
};

export function StatusBadge({ status, label }: { status: string; label?: string }) {
  return (
    <span className={`badge status-${status}`} data-status={status}>
      <span className={status === "running" ? "icon spin" : "icon"} aria-hidden="true">
        {STATUS_ICON[status] ?? "•"}
      </span>
      {label ?? status.replace("_", " ")}
    </span>
  );
}

export function NodeStatusBadge({ node }: { node: NodeRunState }) {
  return <StatusBadge status={node.status} label={statusLabel(node)} />;
}
