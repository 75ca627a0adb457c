// The `source` parameter of a code node: the Python editor, the line each error is about marked
// in it (a save's 422, the last run's CodeError), and a test run of the node alone.
import { lazy, Suspense, useState } from "react";
import { errorLines } from "../codeErrors";
import type { ErrorInfo } from "../types";

// CodeMirror and its Python grammar are as big as the rest of the app: loaded (a chunk of their
// own) only once a code node is opened.
const PythonEditor = lazy(() => import("./PythonEditor").then((m) => ({ default: m.PythonEditor })));

export function CodeSourceField({
  id,
  value,
  onChange,
  describedBy,
  saveProblems,
  runError,
  runId,
  onTestRun,
  canTestRun,
  readOnly,
}: {
  id: string;
  value: string;
  onChange: (value: string | undefined) => void;
  describedBy?: string;
  /** The API's problems with ``parameters.source`` from the last save. */
  saveProblems: string[];
  /** The node's error in the execution shown. */
  runError: ErrorInfo | null;
  /** The execution shown. */
  runId: string | null;
  onTestRun: () => void;
  canTestRun: boolean;
  readOnly: boolean;
}) {
  // A run's error is about the code as it ran: once edited, its line may be another one, so the
  // error of the run edited after is no longer shown (a later run's error is).
  const [editedAfter, setEditedAfter] = useState<string | null>(null);
  const runErrorKey = runError ? `${runId}\n${runError.message}` : null;
  const shownRunError = runError && runErrorKey !== editedAfter ? runError : null;
  const lines = errorLines(saveProblems, shownRunError);

  return (
    <div className="code-source">
      <Suspense fallback={<p className="muted">Loading the Python editor…</p>}>
        <PythonEditor
          id={id}
          label="source (Python)"
          value={value}
          readOnly={readOnly}
          describedBy={describedBy}
          errors={lines}
          onChange={(text) => {
            setEditedAfter(runErrorKey);
            onChange(text === "" ? undefined : text);
          }}
        />
      </Suspense>
      {shownRunError && shownRunError.type === "CodeError" && (
        <p className="field-errors" role="alert">
          ⚠ Last run: {shownRunError.message}
        </p>
      )}
      {!readOnly && (
        <div className="code-actions">
          <button
            type="button"
            onClick={onTestRun}
            disabled={!canTestRun}
            title="Saves, then runs this node alone with the input its parents recorded in their latest run"
          >
            ▶ Test with the last input
          </button>
        </div>
      )}
    </div>
  );
}
