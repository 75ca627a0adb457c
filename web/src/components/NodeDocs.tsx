// The docs of a node's type in its settings: its section of docs/nodes.md, bundled with the UI
// (a chunk of its own, loaded when first opened) so that it shows offline too.
import { useEffect, useState } from "react";
import { docsSection } from "../nodeDocs";

export function NodeDocs({ type }: { type: string }) {
  const [open, setOpen] = useState(false);
  /** undefined: not loaded yet; null: the docs have no section on the type. */
  const [text, setText] = useState<string | null | undefined>(undefined);
  useEffect(() => {
    if (!open || text !== undefined) return;
    let live = true;
    import("../../../docs/nodes.md?raw").then(
      (m) => live && setText(docsSection(m.default, type)),
      () => live && setText(null),
    );
    return () => {
      live = false;
    };
  }, [open, type, text]);
  return (
    <details className="node-docs" onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Docs: {type}</summary>
      {text === undefined ? (
        <p className="muted">Loading…</p>
      ) : text === null ? (
        <p className="muted">docs/nodes.md has no section on “{type}”.</p>
      ) : (
        <pre className="docs-text" tabIndex={0} aria-label={`Docs of ${type}`}>
          {text}
        </pre>
      )}
    </details>
  );
}
