// The live list of running executions (every workflow's): what two polls of the API, one per
// status, add up to.
import type { ExecutionSummary } from "./types";

/** How often the list is read again, in ms. The notifier's WebSocket follows one execution at
 * a time (there is no stream of every execution), and a page of queued and running executions
 * is one indexed query each: a poll every 2 s costs the API little and a row leaves at most
 * 2 s after its execution ended. */
export const RUNNING_POLL_MS = 2000;

/** Queued and running executions as one list, newest first. Read by two requests, an
 * execution may be in both (it started in between): it is listed once, as running. */
export function runningList(queued: ExecutionSummary[], running: ExecutionSummary[]): ExecutionSummary[] {
  const byId = new Map<string, ExecutionSummary>();
  for (const e of queued) byId.set(e.id, e);
  for (const e of running) byId.set(e.id, e);
  return [...byId.values()].sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? "") || b.id.localeCompare(a.id));
}
