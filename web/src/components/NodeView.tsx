// One node opened wide, as n8n's node view: its input (the last run's), its parameters and its
// output side by side; stacked on a narrow screen. A click on a field of the input table (or of
// a parent's output) inserts its expression into the parameter field focused last.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { itemFieldExpression, nodeFieldExpression } from "../expressions";
import { expressionTarget, watchExpressionTarget } from "../expressionTarget";
import type { PortItems } from "../types";
import { ItemsView } from "./ItemsView";
import "./expressions.css";

function useTargetLabel(): string | null {
  const [label, setLabel] = useState(() => expressionTarget()?.label ?? null);
  useEffect(() => watchExpressionTarget(() => setLabel(expressionTarget()?.label ?? null)), []);
  return label;
}

export function NodeView({
  nodeId,
  title,
  typeName,
  input,
  inputRecorded,
  parents,
  output,
  status,
  settings,
  onClose,
}: {
  nodeId: string;
  title: string;
  typeName: string;
  /** The node's input in the execution shown, else what its parents put out there. */
  input: PortItems | null;
  /** Whether ``input`` is the node's own recorded input (else assembled from its parents). */
  inputRecorded: boolean;
  /** The parents' outputs in the execution shown, by node id. */
  parents: Record<string, PortItems>;
  output: PortItems | null;
  status: ReactNode;
  /** The node's settings form (the same as the side panel's). */
  settings: ReactNode;
  onClose: () => void;
}) {
  const target = useTargetLabel();
  const [note, setNote] = useState<string | null>(null);
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => close.current?.focus(), []);

  function insert(expression: string) {
    const field = expressionTarget();
    if (!field) {
      setNote("Click into a parameter field first: the expression goes into the field focused last.");
      return;
    }
    setNote(null);
    field.insert(expression);
  }

  return (
    <div
      className="node-view-backdrop"
      onKeyDown={(e) => {
        // Escape closes the view, unless an editor inside used it (to close its completions).
        if (e.key === "Escape" && !e.defaultPrevented) onClose();
      }}
    >
      <div className="node-view card" role="dialog" aria-modal="true" aria-labelledby="node-view-title">
        <div className="node-view-head">
          <h2 id="node-view-title">
            {title} <span className="muted">{typeName}</span>
          </h2>
          <span>{status}</span>
          <button type="button" ref={close} onClick={onClose}>
            Close node view
          </button>
        </div>
        <p className="muted small node-view-hint" aria-live="polite">
          {note ??
            (target
              ? `A click on a field of the input inserts its expression into “${target}”.`
              : "Click into a parameter field, then on a field of the input to insert its expression.")}
        </p>
        <div className="node-view-columns">
          <section className="node-view-column" aria-label="Input">
            <h3>Input</h3>
            {input ? (
              <>
                {!inputRecorded && <p className="muted small">Not run yet: the output its parents recorded last.</p>}
                <ItemsView label="Input items" data={input} onPickField={(_, key) => insert(itemFieldExpression(key))} />
              </>
            ) : (
              <p className="muted">No input recorded yet: run the workflow, or its parents.</p>
            )}
            {Object.entries(parents).map(([parent, items]) => (
              <details key={parent} className="parent-output">
                <summary>
                  Output of <code>{parent}</code>
                </summary>
                <ItemsView
                  label={`Output of ${parent}`}
                  data={items}
                  onPickField={(port, key) => insert(nodeFieldExpression(parent, port, key))}
                />
              </details>
            ))}
          </section>
          {/* The settings form has its own "Parameters" heading, after the node's name. */}
          <section className="node-view-column node-view-parameters" aria-label="Settings">
            <h3>Settings</h3>
            {settings}
          </section>
          <section className="node-view-column" aria-label="Output">
            <h3>Output</h3>
            {output ? <ItemsView label="Output items" data={output} /> : <p className="muted">No output recorded yet for {nodeId}.</p>}
          </section>
        </div>
      </div>
    </div>
  );
}
