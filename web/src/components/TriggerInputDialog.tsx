// Run the workflow from a trigger with items typed here (a JSON list of objects): the trigger
// outputs them (docs/nodes.md, "Triggers"). Checked before it is sent; the API's 422 about the
// input is shown under the field, and the items are remembered for the next run in this tab.
import { useEffect, useRef, useState } from "react";
import { ApiError } from "../api";
import { inputIssueText, isInputIssue, parseTriggerItems, rememberInput, rememberedInput } from "../triggerInput";
import type { Item } from "../types";

export function TriggerInputDialog({
  workflowId,
  trigger,
  onCancel,
  onRun,
}: {
  workflowId: string;
  trigger: string;
  onCancel: () => void;
  /** Starts the run; rejects with the API's error, which is shown here when about the input. */
  onRun: (items: Item[]) => Promise<void>;
}) {
  const [text, setText] = useState(() => rememberedInput(workflowId, trigger) ?? '[\n  {}\n]');
  const [errors, setErrors] = useState<string[]>([]);
  const [running, setRunning] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => area.current?.focus(), []);

  async function run() {
    let items: Item[];
    try {
      items = parseTriggerItems(text);
    } catch (e) {
      setErrors([(e as Error).message]);
      return;
    }
    setRunning(true);
    rememberInput(workflowId, trigger, text);
    try {
      await onRun(items);
    } catch (e) {
      const issues = e instanceof ApiError && e.status === 422 ? e.issues.filter(isInputIssue) : [];
      setErrors(issues.length ? issues.map(inputIssueText) : [(e as Error).message]);
    } finally {
      setRunning(false);
    }
  }

  return (
    <div className="modal-backdrop" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <div className="modal card" role="dialog" aria-modal="true" aria-labelledby="trigger-input-title">
        <h2 id="trigger-input-title">Run the workflow from “{trigger}” with input</h2>
        <p className="muted" id="trigger-input-help">
          The items the trigger puts out: a JSON list of objects, <code>{'[{"name": "Ann"}]'}</code>.
        </p>
        <label htmlFor="trigger-input">Input items</label>
        <textarea
          id="trigger-input"
          ref={area}
          className="code"
          rows={12}
          value={text}
          aria-invalid={errors.length ? true : undefined}
          aria-describedby={errors.length ? "trigger-input-help trigger-input-errors" : "trigger-input-help"}
          onChange={(e) => {
            setText(e.target.value);
            setErrors([]);
          }}
        />
        {errors.length > 0 && (
          // The alert wraps the list: a role on the <ul> would take its items out of a list.
          <div id="trigger-input-errors" role="alert">
            <ul className="field-errors">
              {errors.map((m, i) => (
                <li key={i}>⚠ Not valid: {m}</li>
              ))}
            </ul>
          </div>
        )}
        <div className="modal-actions">
          <button type="button" className="ghost" onClick={onCancel}>
            Cancel
          </button>
          <button type="button" className="primary" disabled={running} onClick={() => void run()}>
            ▶ Run workflow
          </button>
        </div>
      </div>
    </div>
  );
}
