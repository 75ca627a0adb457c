import { createContext, useContext } from "react";
import type { Issues } from "../graph";
import type { RunState } from "../state/executionState";
import type { NodeType } from "../types";

export interface EditorContextValue {
  types: Record<string, NodeType>;
  /** The execution state shown on the canvas (live, or a timeline step), if any. */
  run: RunState | null;
  issues: Issues;
  readOnly: boolean;
  /** An execution started from this editor is still running. */
  busy: boolean;
  runTrigger: (nodeId: string) => void;
  openMenu: (nodeId: string, x: number, y: number) => void;
}

export const EditorContext = createContext<EditorContextValue | null>(null);

export function useEditor(): EditorContextValue {
  const value = useContext(EditorContext);
  if (!value) throw new Error("useEditor outside the editor");
  return value;
}
