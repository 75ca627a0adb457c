// The cycle a definition holds, if any, found in the draft as it is edited (the API refuses to
// run one: docs/api.md), so that its nodes and connections can be marked on the canvas.
import { emptyIssues, type Issues } from "./graph";

export interface Cycle {
  /** The nodes in order, the first repeated at the end: a → b → a. */
  path: string[];
  /** The connections along it (React Flow edge ids). */
  edges: string[];
}

interface Link {
  id: string;
  source: string;
  target: string;
}

/** The first cycle met in a depth-first walk over ``nodes`` in order, or null. */
export function findCycle(nodes: string[], links: Link[]): Cycle | null {
  const out = new Map<string, Link[]>();
  for (const l of links) out.set(l.source, [...(out.get(l.source) ?? []), l]);
  const state = new Map<string, "open" | "done">();
  const stack: Link[] = [];

  function walk(node: string): Cycle | null {
    state.set(node, "open");
    for (const link of out.get(node) ?? []) {
      const seen = state.get(link.target);
      if (seen === "open") {
        const from = stack.findIndex((l) => l.source === link.target);
        const along = [...(from === -1 ? [] : stack.slice(from)), link];
        return { path: [...along.map((l) => l.source), link.target], edges: along.map((l) => l.id) };
      }
      if (seen === undefined) {
        stack.push(link);
        const found = walk(link.target);
        if (found) return found;
        stack.pop();
      }
    }
    state.set(node, "done");
    return null;
  }

  for (const node of nodes) if (!state.has(node)) {
    const found = walk(node);
    if (found) return found;
  }
  return null;
}

/** "a → b → a". */
export function cycleText(cycle: Cycle): string {
  return cycle.path.join(" → ");
}

/** ``issues`` with the cycle's nodes and connections marked too. */
export function withCycle(issues: Issues, cycle: Cycle | null): Issues {
  if (!cycle) return issues;
  const marked = { ...emptyIssues(), ...issues, nodes: { ...issues.nodes }, edges: { ...issues.edges } };
  const msg = `part of a cycle: ${cycleText(cycle)}`;
  for (const node of new Set(cycle.path)) marked.nodes[node] = [...(marked.nodes[node] ?? []), { field: "", msg }];
  for (const edge of cycle.edges) marked.edges[edge] = [...(marked.edges[edge] ?? []), msg];
  return marked;
}
