// Which node a rerun starts from, and which trigger runs a node's parents: the choices the UI
// makes for the user before it calls the API.
import type { Execution, ExecutionStatus, NodeType, WorkflowDef } from "./types";

/** Finished without succeeding: what "Retry" is offered for. */
export const RETRYABLE: ReadonlySet<ExecutionStatus> = new Set(["failed", "partial", "cancelled", "timed_out"]);
export const FINISHED: ReadonlySet<ExecutionStatus> = new Set([...RETRYABLE, "succeeded"]);

/** The node a retry reruns from. The API runs every node that failed, was cancelled or
 * skipped again anyway (docs/api.md, "Reruns"), so any of them will do; the first failed one
 * says best what the retry is for. A node-mode execution is rerun by naming its node. */
export function retryFrom(execution: Execution): string | null {
  if (execution.mode === "node") return execution.node;
  const nodes = Object.entries(execution.nodes);
  const failed = nodes.find(([, n]) => n.status === "failed") ?? nodes.find(([, n]) => n.status !== "succeeded");
  return failed?.[0] ?? execution.trigger ?? nodes[0]?.[0] ?? null;
}

/** The triggers from which ``node`` is reached, nearest first: running the workflow from one
 * of them runs the node's parents (and the node, and what follows it: the API has no run
 * that stops at a node). */
export function triggersUpstream(node: string, def: WorkflowDef, types: Record<string, NodeType>): string[] {
  const typeOf = new Map(def.nodes.map((n) => [n.id, types[n.type]?.category]));
  const found: string[] = [];
  const seen = new Set([node]);
  let frontier = [node];
  while (frontier.length) {
    const parents = def.connections.filter((c) => frontier.includes(c.to) && !seen.has(c.from)).map((c) => c.from);
    frontier = [...new Set(parents)];
    for (const p of frontier) {
      seen.add(p);
      if (typeOf.get(p) === "trigger") found.push(p);
    }
  }
  return found;
}
