// Copy and paste of nodes: the selected nodes (and the connections between them) as workflow
// JSON, and workflow JSON (copied nodes, a definition, a workflow from the API or a one-workflow
// export file) merged into the draft with fresh ids and free positions.
import { newNodeId, toCanvas } from "./graph";
import type { ConnectionDef, NodeDef, WorkflowDef } from "./types";

/** Nodes and connections copied or pasted: a workflow definition without the rest. */
export interface Fragment {
  nodes: NodeDef[];
  connections: ConnectionDef[];
}

/** How far pasted nodes are moved (down and right, again while they would cover a node). */
export const PASTE_OFFSET = 40;
/** Closer than this on both axes, a pasted node counts as covering an existing one. */
const OVERLAP = 30;

/** The nodes with these ids and the connections among them (others are left out). */
export function copyFragment(def: Fragment, ids: Iterable<string>): Fragment {
  const wanted = new Set(ids);
  return {
    nodes: def.nodes.filter((n) => wanted.has(n.id)),
    connections: def.connections.filter((c) => wanted.has(c.from) && wanted.has(c.to)),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The fragment a pasted text holds. null: the text is no workflow JSON at all (plain text,
 * pasted by mistake, is ignored); ``error``: it looks like one but cannot be used. */
export function parseFragment(text: string): { fragment: Fragment } | { error: string } | null {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) return null;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  if (value.format === "nodedrop.workflows") {
    const workflows = Array.isArray(value.workflows) ? value.workflows : [];
    if (workflows.length !== 1)
      return { error: `The export holds ${workflows.length} workflows; paste one workflow's definition.` };
    const versions = isObject(workflows[0]) && Array.isArray(workflows[0].versions) ? workflows[0].versions : [];
    const latest = versions[versions.length - 1];
    value = isObject(latest) ? latest.definition : undefined;
    if (!isObject(value)) return { error: "The export's workflow has no definition." };
  }
  if (!Array.isArray(value.nodes)) return null;
  const nodes = value.nodes;
  const connections = Array.isArray(value.connections) ? value.connections : [];
  for (const [i, n] of nodes.entries())
    if (!isObject(n) || typeof n.id !== "string" || typeof n.type !== "string")
      return { error: `Node ${i} of the pasted JSON needs an "id" and a "type".` };
  for (const [i, c] of connections.entries())
    if (!isObject(c) || typeof c.from !== "string" || typeof c.to !== "string")
      return { error: `Connection ${i} of the pasted JSON needs a "from" and a "to".` };
  return { fragment: { nodes: nodes as NodeDef[], connections: connections as ConnectionDef[] } };
}

/** ``fragment`` ready to add to a draft of ``existing`` nodes: each node gets a fresh id (its
 * own when free, else ``id_2``...), the connections follow the new ids (those to a node not
 * pasted are dropped), and the nodes move by ``PASTE_OFFSET`` steps until none covers an
 * existing node. Nodes without a position are laid out as a loaded definition would be. */
export function pasteFragment(existing: NodeDef[], fragment: Fragment): Fragment {
  const taken = existing.map((n) => n.id);
  const renamed = new Map<string, string>();
  for (const n of fragment.nodes) {
    if (renamed.has(n.id)) continue;
    const id = newNodeId(n.id, taken);
    renamed.set(n.id, id);
    taken.push(id);
  }
  const laidOut = toCanvas({ name: "", ...fragment } as WorkflowDef).nodes;
  const positions = fragment.nodes.map((n, i) => n.position ?? laidOut[i].position);
  const covers = (dx: number) =>
    positions.some((p) =>
      existing.some((e) => e.position && Math.abs(e.position.x - (p.x + dx)) < OVERLAP && Math.abs(e.position.y - (p.y + dx)) < OVERLAP),
    );
  let shift = 0;
  while (covers(shift)) shift += PASTE_OFFSET;
  const seen = new Set<string>();
  const nodes: NodeDef[] = [];
  fragment.nodes.forEach((n, i) => {
    if (seen.has(n.id)) return; // a repeated id: the first one counts
    seen.add(n.id);
    nodes.push({ ...n, id: renamed.get(n.id)!, position: { x: positions[i].x + shift, y: positions[i].y + shift } });
  });
  const connections = fragment.connections
    .filter((c) => renamed.has(c.from) && renamed.has(c.to))
    .map((c) => ({ ...c, from: renamed.get(c.from)!, to: renamed.get(c.to)! }));
  return { nodes, connections };
}
