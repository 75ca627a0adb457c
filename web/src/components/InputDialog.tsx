import { useEffect, useRef, useState } from "react";
import { parsePortItems } from "../portItems";
import type { PortItems } from "../types";

/** Node mode with an explicit input: ``{port: [items]}`` as JSON. */
export function InputDialog({
  nodeId,
  initial,
  onCancel,
  onRun,
}: {
  nodeId: string;
  initial: PortItems;
  onCancel: () => void;
  onRun: (input: PortItems) => void;
}) {
  const [text, setText] = useState(JSON.stringify(initial, null, 2));
  const [error, setError] = useState<string | null>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => area.current?.focus(), []);

  function run() {
    try {
      onRun(parsePortItems(text));
    } catch (e) {
      setError((e as Error).message);
    }
  }

  return (
    <div className="modal-backdrop" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <div className="modal card" role="dialog" aria-modal="true" aria-labelledby="input-dialog-title">
        <h2 id="input-dialog-title">Execute node “{nodeId}” with input</h2>
        <p className="muted">
          The node's input as <code>{'{"port": [items]}'}</code>; items are JSON objects.
        </p>
        <label htmlFor="node-input">Input</label>
        <textarea id="node-input" ref={area} className="code" rows={12} value={text} onChange={(e) => setText(e.target.value)} />
        {error && (
          <p className="error" role="alert">
            Not valid: {error}
          </p>
        )}
        <div className="modal-actions">
          <button type="button" className="ghost" onClick={onCancel}>
            Cancel
          </button>
          <button type="button" className="primary" onClick={run}>
            ▶ Execute node
          </button>
        </div>
      </div>
    </div>
  );
}
