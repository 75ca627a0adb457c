// A node's pinned output in the draft: edited as JSON (checked before it is applied) or unpinned.
// While pinned, the node is not run: this is its output (docs/nodes.md, `pinned_output`).
import { useEffect, useState } from "react";
import { parsePortItems } from "../portItems";
import type { PortItems } from "../types";

export function PinnedOutputEditor({
  pinned,
  readOnly,
  onChange,
}: {
  pinned: PortItems;
  readOnly: boolean;
  /** The new pinned output, or null to unpin. */
  onChange: (pinned: PortItems | null) => void;
}) {
  const shownText = JSON.stringify(pinned, null, 2);
  const [text, setText] = useState(shownText);
  const [error, setError] = useState<string | null>(null);
  // Pinned again from a run meanwhile: show that.
  useEffect(() => {
    setText(shownText);
    setError(null);
  }, [shownText]);

  function apply() {
    try {
      onChange(parsePortItems(text));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }

  return (
    <section className="pinned-output" aria-labelledby="pinned-output-title">
      <h3 id="pinned-output-title">
        <span aria-hidden="true">📌 </span>Pinned output
      </h3>
      <p className="muted">
        This node is not run while its output is pinned: its children get these items. Save to keep the change.
      </p>
      <label htmlFor="pinned-output-json">Pinned output (JSON, {'{"port": [items]}'})</label>
      <textarea
        id="pinned-output-json"
        className="code"
        rows={8}
        value={text}
        disabled={readOnly}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? "pinned-output-error" : undefined}
        onChange={(e) => setText(e.target.value)}
      />
      {error && (
        <p id="pinned-output-error" className="error" role="alert">
          Not valid: {error}
        </p>
      )}
      {!readOnly && (
        <div className="modal-actions">
          <button type="button" onClick={apply} disabled={text === shownText}>
            Apply pinned output
          </button>
          <button type="button" className="danger" onClick={() => onChange(null)}>
            Unpin
          </button>
        </div>
      )}
    </section>
  );
}
