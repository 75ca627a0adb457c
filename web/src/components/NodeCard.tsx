import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { hasInput, outputPorts, type CanvasNode } from "../graph";
import { deferredLabel } from "../state/executionState";
import { useEditor } from "./EditorContext";
import { NodeStatusBadge } from "./StatusBadge";

const CATEGORY_ICON: Record<string, string> = { trigger: "⚡", action: "⚙", flow: "⇄" };

function NodeCardImpl({ id, data, selected }: NodeProps<CanvasNode>) {
  const editor = useEditor();
  const def = data.def;
  const type = editor.types[def.type];
  const state = editor.run?.nodes[id];
  const problems = editor.issues.nodes[id] ?? [];
  const ports = outputPorts(def, type);
  const status = state?.status ?? "idle";
  const isTrigger = type?.category === "trigger";
  const deferred = state?.deferredFor ?? null;
  const pinned = def.pinned_output !== undefined;

  return (
    <div
      className={`node-card status-${status}${problems.length ? " has-issues" : ""}${selected ? " selected" : ""}`}
      data-testid={`node-${id}`}
      data-status={status}
      aria-label={`${def.name || id} (${type?.display_name ?? def.type})${state ? `, ${state.status}` : ""}${deferred ? ", waiting for a runner" : ""}${pinned ? ", output pinned" : ""}`}
    >
      {hasInput(type) && <Handle type="target" position={Position.Left} id="main" className="port in" />}
      <div className="node-head">
        <span className={`node-icon cat-${type?.category ?? "action"}`} aria-hidden="true">
          {CATEGORY_ICON[type?.category ?? "action"]}
        </span>
        <div className="node-titles">
          <div className="node-title">{def.name || id}</div>
          <div className="node-type">{type?.display_name ?? `unknown type ${def.type}`}</div>
        </div>
        {pinned && (
          <span className="node-pin" role="img" aria-label="Output pinned" title="Output pinned: the node is not run">
            📌
          </span>
        )}
        <button
          type="button"
          className="icon-button nodrag"
          aria-label={`Actions for node ${id}`}
          aria-haspopup="menu"
          onClick={(e) => {
            const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
            editor.openMenu(id, r.left, r.bottom + 4);
          }}
        >
          ⋯
        </button>
      </div>
      {state && (
        <div className="node-state">
          <NodeStatusBadge node={state} />
          {deferred && (
            <div className="node-deferred" title={deferredLabel(deferred)}>
              <span aria-hidden="true">⏸ </span>
              Waiting for a runner ({deferred.key}’s share)
            </div>
          )}
        </div>
      )}
      {problems.length > 0 && (
        <div className="node-issues" role="note">
          ⚠ {problems.length === 1 ? problems[0].msg : `${problems.length} problems`}
        </div>
      )}
      {isTrigger && !editor.readOnly && (
        <button
          type="button"
          className="run-trigger nodrag"
          disabled={editor.busy}
          onClick={() => editor.runTrigger(id)}
          aria-label={`Run workflow from ${id}`}
        >
          ▶ Run workflow
        </button>
      )}
      {ports.map((port, i) => (
        <Handle
          key={port}
          type="source"
          position={Position.Right}
          id={port}
          className={`port out port-${port}`}
          style={{ top: ports.length === 1 ? "50%" : `${((i + 1) / (ports.length + 1)) * 100}%` }}
        >
          {ports.length > 1 && <span className="port-label">{port}</span>}
        </Handle>
      ))}
    </div>
  );
}

export const NodeCard = memo(NodeCardImpl);
