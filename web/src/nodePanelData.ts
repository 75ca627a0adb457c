// What the node view and the expression editor show of one node from the execution shown:
// its input (recorded, else assembled from its parents' output), its parents' outputs, and the
// scope an expression's preview is evaluated in.
import { expressionData, inputFromParents, type ExpressionData } from "./expressions";
import type { PortItems } from "./types";

/** The parts of an execution's folded state read here (src/state/executionState.ts). */
export interface RunData {
  executionId: string;
  trigger: string | null;
  nodes: Record<string, { input: PortItems | null; output: PortItems | null }>;
}

export interface Edge {
  source: string;
  target: string;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

export interface NodePanelData {
  input: PortItems | null;
  inputRecorded: boolean;
  parents: Record<string, PortItems>;
  output: PortItems | null;
  expression: ExpressionData;
  execution: Record<string, string>;
}

export function nodePanelData(node: string, nodeIds: string[], edges: Edge[], run: RunData | null): NodePanelData {
  const outputs: Record<string, PortItems | null> = {};
  for (const [id, state] of Object.entries(run?.nodes ?? {})) outputs[id] = state.output;
  const connections = edges.map((e) => ({
    from: e.source,
    to: e.target,
    output: e.sourceHandle ?? undefined,
    input: e.targetHandle ?? undefined,
  }));
  const recorded = run?.nodes[node]?.input ?? null;
  const input = recorded ?? inputFromParents(node, connections, outputs);
  const parents: Record<string, PortItems> = {};
  for (const c of connections) if (c.to === node && outputs[c.from]) parents[c.from] = outputs[c.from]!;
  return {
    input,
    inputRecorded: recorded !== null,
    parents,
    output: run?.nodes[node]?.output ?? null,
    expression: expressionData(nodeIds, input, outputs),
    execution: run ? { id: run.executionId, trigger: run.trigger ?? "" } : {},
  };
}
