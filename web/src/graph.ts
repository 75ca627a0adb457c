// The workflow definition <-> the canvas (React Flow nodes and edges), and where the API's
// validation errors belong on it.
import type { Edge, Node } from "@xyflow/react";
import type { ConnectionDef, NodeDef, NodeType, ValidationIssue, WorkflowDef } from "./types";

export const ID_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export interface NodeData extends Record<string, unknown> {
  def: NodeDef;
}
export type CanvasNode = Node<NodeData, "nd">;

export function edgeId(c: ConnectionDef): string {
  return `${c.from}:${c.output ?? "main"}->${c.to}:${c.input ?? "main"}`;
}

export function toCanvas(def: WorkflowDef): { nodes: CanvasNode[]; edges: Edge[] } {
  const nodes = def.nodes.map((n, i) => ({
    id: n.id,
    type: "nd" as const,
    position: n.position ?? autoPosition(def, n.id, i),
    data: { def: n },
  }));
  const edges = def.connections.map((c) => toEdge(c));
  return { nodes, edges };
}

export function toEdge(c: ConnectionDef): Edge {
  return {
    id: edgeId(c),
    source: c.from,
    target: c.to,
    sourceHandle: c.output ?? "main",
    targetHandle: c.input ?? "main",
  };
}

/** Columns by depth from the triggers, for definitions saved without positions. */
function autoPosition(def: WorkflowDef, id: string, index: number): { x: number; y: number } {
  const depth = new Map<string, number>();
  const visit = (node: string, d: number, seen: Set<string>) => {
    if (seen.has(node) || (depth.get(node) ?? -1) >= d) return;
    depth.set(node, d);
    seen.add(node);
    for (const c of def.connections) if (c.from === node) visit(c.to, d + 1, new Set(seen));
  };
  for (const n of def.nodes) if (!def.connections.some((c) => c.to === n.id)) visit(n.id, 0, new Set());
  const d = depth.get(id) ?? 0;
  const row = def.nodes.filter((n, i) => i < index && (depth.get(n.id) ?? 0) === d).length;
  return { x: 60 + d * 280, y: 80 + row * 150 };
}

export function toDefinition(
  name: string,
  nodes: CanvasNode[],
  edges: Edge[],
  settings?: WorkflowDef["settings"],
): WorkflowDef {
  return {
    name,
    nodes: nodes.map((n) => ({
      ...n.data.def,
      id: n.id,
      position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
    })),
    connections: edges.map((e) => {
      const c: ConnectionDef = { from: e.source, to: e.target };
      if (e.sourceHandle && e.sourceHandle !== "main") c.output = e.sourceHandle;
      if (e.targetHandle && e.targetHandle !== "main") c.input = e.targetHandle;
      return c;
    }),
    ...(settings && Object.keys(settings).length ? { settings } : {}),
  };
}

/** A fresh id for a node of ``type``: the type's name, then name_2, name_3... */
export function newNodeId(type: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  let base = type.replace(/[^A-Za-z0-9_-]/g, "_");
  if (!/^[A-Za-z]/.test(base)) base = `n_${base}`;
  base = base.slice(0, 56);
  if (!used.has(base)) return base;
  for (let i = 2; ; i++) if (!used.has(`${base}_${i}`)) return `${base}_${i}`;
}

/** The output ports a node offers on the canvas. */
export function outputPorts(def: NodeDef, type: NodeType | undefined): string[] {
  let ports = type?.outputs ?? ["main"];
  if (def.type === "switch") {
    const cases = Array.isArray(def.parameters?.cases) ? (def.parameters.cases as any[]) : [];
    const names = cases.map((c) => c?.output).filter((o): o is string => typeof o === "string" && o !== "");
    const fallback = def.parameters?.default_output;
    if (typeof fallback === "string" && fallback) names.push(fallback);
    ports = [...new Set(names)];
  }
  if (def.on_error === "error_output" && !ports.includes("error")) ports = [...ports, "error"];
  return ports;
}

/** The port a new child of ``from`` is connected to: the first with nothing connected yet (an
 * ``if``'s ``false`` once ``true`` has a child), else the first. */
export function freeOutputPort(ports: string[], from: string, edges: { source: string; sourceHandle?: string | null }[]): string | undefined {
  const used = new Set(edges.filter((e) => e.source === from).map((e) => e.sourceHandle ?? "main"));
  return ports.find((p) => !used.has(p)) ?? ports[0];
}

/** How many items went along a connection from ``port`` in a run: the length of the source's
 * output on that port, or null when it has none (not run, or its output held elsewhere). */
export function itemsOnPort(output: Record<string, unknown> | null | undefined, port: string): number | null {
  const items = output?.[port];
  return Array.isArray(items) ? items.length : null;
}

export function hasInput(type: NodeType | undefined): boolean {
  return type?.category !== "trigger";
}

/** Parameters a newly added node starts with, so that it is valid from the start. */
export function initialParameters(type: NodeType): Record<string, any> | undefined {
  switch (type.type) {
    case "wait":
      return { ms: 1000 };
    case "set":
      return { values: { greeting: "hello" } };
    case "if":
      return { condition: "{{ true }}" };
    case "switch":
      return { cases: [{ output: "a", condition: "{{ true }}" }], default_output: "other" };
    case "http_request":
      return { method: "GET", url: "https://example.org" };
    case "schedule_trigger":
      return { cron: "0 * * * *" };
    case "code":
      // The smallest valid source (an empty one is refused): the contract, ready to edit.
      return { source: "def main(items, ctx):\n    # items: the input items (dicts); return the output items\n    return items\n" };
  }
  const required = type.parameters_schema.required ?? [];
  if (required.length === 0) return undefined;
  const params: Record<string, any> = {};
  for (const name of required) {
    const schema = type.parameters_schema.properties?.[name];
    params[name] = schema?.default ?? (schema?.type === "integer" || schema?.type === "number" ? 0 : "");
  }
  return params;
}

export interface Issues {
  /** node id -> problems, each with the field it names inside the node ("parameters.url"). */
  nodes: Record<string, { field: string; msg: string }[]>;
  /** edge id -> problems */
  edges: Record<string, string[]>;
  /** problems with no node or connection to point at (name, a cycle, no trigger...) */
  general: string[];
}

export function emptyIssues(): Issues {
  return { nodes: {}, edges: {}, general: [] };
}

/** Sorts a 422's ``detail`` items onto the nodes and connections of the definition that was
 * sent: ``loc`` is ``["body", "nodes", <index>, field...]`` or ``["body", "connections", ...]``. */
export function mapIssues(sent: WorkflowDef, issues: ValidationIssue[]): Issues {
  const out = emptyIssues();
  for (const issue of issues) {
    const loc = issue.loc[0] === "body" ? issue.loc.slice(1) : issue.loc;
    const [section, index, ...rest] = loc;
    if (section === "nodes" && typeof index === "number" && sent.nodes[index]) {
      const id = sent.nodes[index].id;
      (out.nodes[id] ??= []).push({ field: rest.join("."), msg: issue.msg });
    } else if (section === "connections" && typeof index === "number" && sent.connections[index]) {
      (out.edges[edgeId(sent.connections[index])] ??= []).push(issue.msg);
    } else {
      const where = loc.join(".");
      out.general.push(where ? `${where}: ${issue.msg}` : issue.msg);
    }
  }
  return out;
}
