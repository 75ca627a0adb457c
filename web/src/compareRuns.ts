// Two executions of a workflow side by side (docs/ui.md, "Compare two executions"): per node,
// the status and duration in each, and how the output changed, item by item and field by field.
import { holdsReference } from "./portItems";
import type { Execution, Item, JsonValue, NodeExecution, PortItems } from "./types";

/** A field of an item that differs: only in the second run, only in the first, or in both. */
export interface FieldChange {
  field: string;
  change: "added" | "removed" | "changed";
  before?: JsonValue;
  after?: JsonValue;
}

/** Items of one port, matched by position (an item's place in its port's list). */
export interface ItemChange {
  port: string;
  index: number;
  change: "added" | "removed" | "changed";
  /** For a changed item, the fields that differ (top-level keys). */
  fields: FieldChange[];
}

export interface OutputDiff {
  /** The output is held elsewhere (over 256 KiB, fetched on demand): not compared here. */
  stored: boolean;
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
  items: ItemChange[];
}

export interface NodeComparison {
  node: string;
  first: NodeExecution | null;
  second: NodeExecution | null;
  /** Milliseconds, when the node started and finished in that run. */
  firstMs: number | null;
  secondMs: number | null;
  sameStatus: boolean;
  output: OutputDiff;
}

export function elapsedMs(node: NodeExecution | null): number | null {
  if (!node?.started_at || !node.finished_at) return null;
  const ms = new Date(node.finished_at).getTime() - new Date(node.started_at).getTime();
  return Number.isFinite(ms) ? ms : null;
}

/** JSON equality, objects compared key by key whatever the order. */
export function sameJson(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  const ao = a as Record<string, JsonValue>;
  const bo = b as Record<string, JsonValue>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!(k in ao) || !(k in bo) || !sameJson(ao[k], bo[k])) return false;
  return true;
}

export function fieldChanges(before: Item, after: Item): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const field of Object.keys(before))
    if (!(field in after)) changes.push({ field, change: "removed", before: before[field] });
    else if (!sameJson(before[field], after[field])) changes.push({ field, change: "changed", before: before[field], after: after[field] });
  for (const field of Object.keys(after)) if (!(field in before)) changes.push({ field, change: "added", after: after[field] });
  return changes;
}

/** How ``after`` differs from ``before``, port by port (ports in first-seen order). */
export function diffOutputs(before: PortItems | null, after: PortItems | null): OutputDiff {
  const diff: OutputDiff = { stored: false, added: 0, removed: 0, changed: 0, unchanged: 0, items: [] };
  if ((before && holdsReference(before)) || (after && holdsReference(after))) return { ...diff, stored: true };
  const ports = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])];
  for (const port of ports) {
    const a = before?.[port] ?? [];
    const b = after?.[port] ?? [];
    for (let index = 0; index < Math.max(a.length, b.length); index++) {
      if (index >= a.length) {
        diff.added++;
        diff.items.push({ port, index, change: "added", fields: [] });
      } else if (index >= b.length) {
        diff.removed++;
        diff.items.push({ port, index, change: "removed", fields: [] });
      } else {
        const fields = fieldChanges(a[index], b[index]);
        if (fields.length) {
          diff.changed++;
          diff.items.push({ port, index, change: "changed", fields });
        } else diff.unchanged++;
      }
    }
  }
  return diff;
}

/** Every node of either execution: the first's in its order, then those only the second has. */
export function compareExecutions(first: Execution, second: Execution): NodeComparison[] {
  const ids = [...new Set([...Object.keys(first.nodes), ...Object.keys(second.nodes)])];
  return ids.map((node) => {
    const a = first.nodes[node] ?? null;
    const b = second.nodes[node] ?? null;
    return {
      node,
      first: a,
      second: b,
      firstMs: elapsedMs(a),
      secondMs: elapsedMs(b),
      sameStatus: a?.status === b?.status,
      output: diffOutputs(a?.output ?? null, b?.output ?? null),
    };
  });
}

/** "+2 added, 1 removed, 3 changed" or "same output". */
export function summary(diff: OutputDiff): string {
  if (diff.stored) return "held elsewhere (large): not compared";
  const parts = [
    diff.added && `${diff.added} added`,
    diff.removed && `${diff.removed} removed`,
    diff.changed && `${diff.changed} changed`,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "same output";
}
