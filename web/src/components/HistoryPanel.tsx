import type { Api } from "../api";
import { ExecutionsTable } from "./ExecutionsTable";

/** The editor's Executions tab: this workflow's executions. */
export function HistoryPanel({
  api,
  workflowId,
  refresh,
  current,
  onOpen,
}: {
  api: Api;
  workflowId: string;
  refresh: unknown;
  current: string | null;
  onOpen: (id: string) => void;
}) {
  return <ExecutionsTable api={api} workflowId={workflowId} refresh={refresh} current={current} onOpen={(e) => onOpen(e.id)} />;
}
