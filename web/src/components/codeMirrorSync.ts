// What both CodeMirror editors (Python, expressions) do with the value their parent holds.
import type { EditorView } from "@codemirror/view";
import { useEffect, type MutableRefObject } from "react";

/** A value changed from outside (undo, a paste, a reload; not typing here) replaces the text. */
export function useDocFollowsValue(view: MutableRefObject<EditorView | null>, value: string): void {
  useEffect(() => {
    const current = view.current;
    if (current && current.state.doc.toString() !== value)
      current.dispatch({ changes: { from: 0, to: current.state.doc.length, insert: value } });
  }, [value]);
}
