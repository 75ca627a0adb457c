// Undo/redo of the draft on the canvas: a bounded history kept as a pure reducer. The editor
// records a snapshot after each edit and restores one on undo or redo.

/** How many edits can be undone; older ones are forgotten. */
export const HISTORY_LIMIT = 100;

export interface History<T> {
  past: T[];
  present: T;
  future: T[];
  /** What the last recorded edit was about ("params:http"): the next edit with the same key
   * replaces it rather than adding a step, so typing a parameter is one step, not one per key. */
  lastKey: string | null;
}

export type HistoryAction<T> =
  | { type: "reset"; present: T }
  | { type: "record"; present: T; key?: string }
  | { type: "undo" }
  | { type: "redo" };

export function startHistory<T>(present: T): History<T> {
  return { past: [], present, future: [], lastKey: null };
}

export function historyReducer<T>(h: History<T>, action: HistoryAction<T>, limit = HISTORY_LIMIT): History<T> {
  switch (action.type) {
    case "reset":
      return startHistory(action.present);
    case "record": {
      const key = action.key ?? null;
      if (key !== null && key === h.lastKey && h.future.length === 0) return { ...h, present: action.present };
      const past = [...h.past, h.present];
      return { past: past.slice(Math.max(0, past.length - limit)), present: action.present, future: [], lastKey: key };
    }
    case "undo": {
      if (h.past.length === 0) return h;
      return { past: h.past.slice(0, -1), present: h.past[h.past.length - 1], future: [h.present, ...h.future], lastKey: null };
    }
    case "redo": {
      if (h.future.length === 0) return h;
      return { past: [...h.past, h.present], present: h.future[0], future: h.future.slice(1), lastKey: null };
    }
  }
}

export const canUndo = (h: History<unknown>) => h.past.length > 0;
export const canRedo = (h: History<unknown>) => h.future.length > 0;

/** Which history command a key press is, if any: Ctrl+Z (Cmd+Z) undoes; Ctrl+Shift+Z and
 * Ctrl+Y redo. */
export function historyKey(e: { key: string; ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean }): "undo" | "redo" | null {
  if (!(e.ctrlKey || e.metaKey) || e.altKey) return null;
  const key = e.key.toLowerCase();
  if (key === "z") return e.shiftKey ? "redo" : "undo";
  if (key === "y" && !e.shiftKey) return "redo";
  return null;
}
