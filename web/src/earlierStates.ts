// Running one node alone keeps the other nodes' last states on the canvas (as n8n does): a
// node-mode execution's plan is that one node, so the others would otherwise go blank.
import type { RunState } from "./state/executionState";

/** What the canvas shows before a node runs alone: the states shown now, less that node's
 * (its own comes from the new execution, and until then it shows none). */
export function keptBeforeNodeRun(shown: RunState | null, node: string): RunState | null {
  if (!shown) return null;
  const { [node]: _running, ...others } = shown.nodes;
  return { ...shown, nodes: others, plan: shown.plan.filter((id) => id !== node) };
}

/** The run the canvas shows: ``current``, with each node it has no state for in the state
 * ``earlier`` showed (the run bar, log and timeline stay ``current``'s own). */
export function withEarlierStates(current: RunState | null, earlier: RunState | null): RunState | null {
  if (!current || !earlier) return current;
  const carried = Object.fromEntries(Object.entries(earlier.nodes).filter(([id]) => !(id in current.nodes)));
  if (!Object.keys(carried).length) return current;
  return { ...current, nodes: { ...carried, ...current.nodes } };
}
