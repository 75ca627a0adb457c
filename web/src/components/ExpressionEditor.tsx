// The CodeMirror editor of a parameter holding `{{ }}` expressions: highlighting of the
// expressions (src/expressions.ts tokens), completion of `item.` fields and `nodes["` ids from
// the last run, and the characters an error is about marked red (the API's ctx.start/end).
// Loaded as a chunk of its own, with the Python editor's CodeMirror modules.
import { autocompletion, closeBrackets, completionKeymap, type CompletionContext } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { EditorSelection, EditorState, RangeSetBuilder, StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, keymap, type DecorationSet, type ViewUpdate } from "@codemirror/view";
import { forwardRef, useEffect, useImperativeHandle, useRef } from "react";
import { completionsAt, templateTokens, type ExpressionData } from "../expressions";
import { useDocFollowsValue } from "./codeMirrorSync";

export interface ErrorMark {
  from: number;
  to: number;
  message: string;
}

export interface ExpressionEditorHandle {
  /** Puts ``text`` at the cursor (or the end) and focuses the editor. */
  insert: (make: (value: string, at: number) => { text: string; cursor: number }) => void;
  focus: () => void;
}

function highlight(state: EditorState): DecorationSet {
  const builder = new RangeSetBuilder<Decoration>();
  for (const token of templateTokens(state.doc.toString()))
    if (token.to > token.from) builder.add(token.from, token.to, Decoration.mark({ class: `cm-expr-${token.kind}` }));
  return builder.finish();
}

const highlighter = ViewPlugin.fromClass(
  class {
    decorations: DecorationSet;
    constructor(view: EditorView) {
      this.decorations = highlight(view.state);
    }
    update(update: ViewUpdate) {
      if (update.docChanged) this.decorations = highlight(update.state);
    }
  },
  { decorations: (plugin) => plugin.decorations },
);

const setError = StateEffect.define<ErrorMark | null>();

/** The marked error, kept in the state so that it moves with edits; cleared by the next one. */
const errorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    marks = marks.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setError)) continue;
      const mark = effect.value;
      const length = tr.state.doc.length;
      if (!mark || length === 0) {
        marks = Decoration.none;
        continue;
      }
      // An error at the very end (a missing operand) marks the last character.
      const from = Math.min(mark.from, length - 1);
      const to = Math.min(Math.max(mark.to, from + 1), length);
      marks = Decoration.set([
        Decoration.mark({ class: "cm-expr-error", attributes: { title: mark.message, "data-error": "true" } }).range(from, to),
      ]);
    }
    return marks;
  },
  provide: (field) => EditorView.decorations.from(field),
});

export const ExpressionEditor = forwardRef<
  ExpressionEditorHandle,
  {
    id: string;
    label: string;
    value: string;
    onChange: (value: string) => void;
    onFocus: () => void;
    data: ExpressionData;
    error: ErrorMark | null;
    describedBy?: string;
    readOnly: boolean;
    autoFocus: boolean;
  }
>(function ExpressionEditor({ id, label, value, onChange, onFocus, data, error, describedBy, readOnly, autoFocus }, handle) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  // The view is made once; it reads the latest callbacks and data, not the first ones.
  const latest = useRef({ onChange, onFocus, data });
  latest.current = { onChange, onFocus, data };

  useImperativeHandle(handle, () => ({
    insert(make) {
      const current = view.current;
      if (!current) return;
      const doc = current.state.doc.toString();
      // Where the cursor was left: a click on a table took the focus, not the selection.
      const at = current.state.selection.main.head;
      const next = make(doc, at);
      current.dispatch({
        changes: { from: 0, to: doc.length, insert: next.text },
        selection: EditorSelection.cursor(next.cursor),
      });
      current.focus();
    },
    focus: () => view.current?.focus(),
  }));

  useEffect(() => {
    const complete = (context: CompletionContext) => {
      const result = completionsAt(context.state.doc.toString(), context.pos, latest.current.data);
      if (!result || (result.options.length === 0 && !context.explicit)) return null;
      return { from: result.from, options: result.options.map((o) => ({ label: o.label, detail: o.detail, type: "property" })), validFor: /^[\w -]*$/ };
    };
    const created = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          history(),
          closeBrackets(),
          autocompletion({ override: [complete], activateOnTyping: true }),
          // Enter accepts a completion (completionKeymap first); a parameter is one line, so
          // Enter does nothing else, and Tab leaves the field as in any form.
          keymap.of([...completionKeymap, ...historyKeymap, ...defaultKeymap.filter((b) => b.key !== "Enter")]),
          highlighter,
          errorField,
          EditorView.lineWrapping,
          EditorState.readOnly.of(readOnly),
          EditorView.editable.of(!readOnly),
          EditorView.contentAttributes.of({
            id,
            "aria-label": label,
            role: "textbox",
            "aria-multiline": "false",
            ...(describedBy ? { "aria-describedby": describedBy } : {}),
          }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) latest.current.onChange(update.state.doc.toString());
            if (update.focusChanged && update.view.hasFocus) latest.current.onFocus();
          }),
        ],
      }),
    });
    view.current = created;
    if (autoFocus) {
      created.focus();
      // Just made by the ƒx button: the cursor goes between the new braces.
      const doc = created.state.doc.toString();
      created.dispatch({ selection: EditorSelection.cursor(doc.endsWith("{{  }}") ? doc.length - 3 : doc.length) });
    }
    return () => {
      created.destroy();
      view.current = null;
    };
    // The options are fixed for the field shown (the panel is keyed by node id).
  }, [readOnly]);

  useDocFollowsValue(view, value);

  useEffect(() => {
    view.current?.dispatch({ effects: setError.of(error) });
  }, [error]);

  // "nokey": the canvas's Delete/Backspace shortcuts leave keys typed here alone.
  return <div className="expression-editor nokey" ref={host} data-testid={`${id}-expression`} />;
});
