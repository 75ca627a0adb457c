// "Execute node" on a node whose parents recorded no output: instead of the API's 422, offer to
// run them first. The API has no run that stops at a node, so "running the parents" is a run of
// the whole workflow from a trigger upstream: the node and what follows it run too.
import { useEffect, useRef } from "react";

export function ParentsFirstDialog({
  node,
  reason,
  triggers,
  onCancel,
  onRun,
  onInput,
}: {
  node: string;
  /** The API's words for what is missing (it names the parent). */
  reason: string;
  /** The triggers upstream of the node, nearest first. */
  triggers: string[];
  onCancel: () => void;
  onRun: (trigger: string) => void;
  onInput: () => void;
}) {
  const first = useRef<HTMLButtonElement>(null);
  useEffect(() => first.current?.focus(), []);
  return (
    <div className="modal-backdrop" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <div className="modal card" role="dialog" aria-modal="true" aria-labelledby="parents-dialog-title" aria-describedby="parents-dialog-text">
        <h2 id="parents-dialog-title">Run the parents first?</h2>
        <div id="parents-dialog-text">
          <p>
            Node “{node}” cannot run alone yet: {reason}.
          </p>
          {triggers.length ? (
            <p className="muted">
              Running the workflow from its trigger records its parents' output. The whole workflow runs, “{node}” and
              the nodes after it included; afterwards “{node}” can run alone with that input.
            </p>
          ) : (
            <p className="muted">No trigger leads to “{node}”: connect one, or give the node its input yourself.</p>
          )}
        </div>
        <div className="modal-actions">
          <button type="button" className="ghost" onClick={onCancel}>
            Cancel
          </button>
          <button type="button" onClick={onInput}>
            Execute with input…
          </button>
          {triggers.map((t, i) => (
            <button key={t} type="button" className={i === 0 ? "primary" : undefined} ref={i === 0 ? first : undefined} onClick={() => onRun(t)}>
              ▶ Run from {t}
            </button>
          ))}
        </div>
      </div>
    </div>
  );
}
