// A Python editor (CodeMirror 6: highlighting, line numbers, undo, 4-space indentation) whose
// error lines are marked: a red line, and the message as the line's title.
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { bracketMatching, defaultHighlightStyle, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { EditorState, StateEffect, StateField, type Extension } from "@codemirror/state";
import { Decoration, EditorView, keymap, lineNumbers, type DecorationSet } from "@codemirror/view";
import { useEffect, useRef } from "react";
import type { LineError } from "../codeErrors";
import { useDocFollowsValue } from "./codeMirrorSync";

const setErrorLines = StateEffect.define<LineError[]>();

/** The marked lines, kept in the state so that they move with edits above them. A line past the
 * end (the source got shorter since) marks the last one. */
const errorLineField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    marks = marks.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setErrorLines)) continue;
      const doc = tr.state.doc;
      const ranges = effect.value
        .map(({ line, message }) => {
          const at = doc.line(Math.min(Math.max(line, 1), doc.lines)).from;
          return Decoration.line({ class: "cm-error-line", attributes: { title: message, "data-error-line": String(line) } }).range(at);
        })
        .sort((a, b) => a.from - b.from);
      marks = Decoration.set(ranges, true);
    }
    return marks;
  },
  provide: (field) => EditorView.decorations.from(field),
});

export function PythonEditor({
  id,
  value,
  onChange,
  errors,
  describedBy,
  label,
  readOnly = false,
}: {
  id: string;
  value: string;
  onChange: (value: string) => void;
  errors: LineError[];
  describedBy?: string;
  label: string;
  readOnly?: boolean;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  // The view is made once; it calls the latest onChange, not the first one's.
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const extensions: Extension[] = [
      lineNumbers(),
      history(),
      bracketMatching(),
      indentUnit.of("    "),
      python(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      // Tab indents; Escape then Tab leaves the editor (CodeMirror's rule), so it is no trap.
      keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
      errorLineField,
      EditorState.readOnly.of(readOnly),
      EditorView.editable.of(!readOnly),
      EditorView.contentAttributes.of({
        id,
        "aria-label": label,
        ...(describedBy ? { "aria-describedby": describedBy } : {}),
      }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) changed.current(update.state.doc.toString());
      }),
    ];
    const created = new EditorView({ parent: host.current!, state: EditorState.create({ doc: value, extensions }) });
    view.current = created;
    return () => {
      created.destroy();
      view.current = null;
    };
    // The options are fixed for the node shown (the panel is keyed by node id).
  }, [readOnly]);

  useDocFollowsValue(view, value);

  useEffect(() => {
    view.current?.dispatch({ effects: setErrorLines.of(errors) });
  }, [JSON.stringify(errors), readOnly]);

  // "nokey": the canvas's Delete/Backspace shortcuts leave keys typed here alone.
  return <div className="python-editor nokey" ref={host} data-testid={`${id}-editor`} />;
}
