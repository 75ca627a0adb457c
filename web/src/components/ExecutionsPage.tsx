// Every workflow's executions (of the signed-in user; all of them for the admin), newest first.
import { useEffect, useState } from "react";
import type { Api } from "../api";
import { navigate } from "../router";
import type { ExecutionSummary } from "../types";
import { ExecutionsTable } from "./ExecutionsTable";
import { RunningPanel } from "./RunningPanel";
import { TopBar } from "./TopBar";

export function ExecutionsPage({ api, onSignOut }: { api: Api; onSignOut: () => void }) {
  const [names, setNames] = useState<Record<string, string>>({});
  useEffect(() => {
    // Names for the Workflow column; an id without one (deleted, or past the first 200) shows
    // as its id.
    api.listWorkflows().then(
      (page) => setNames(Object.fromEntries(page.items.map((w) => [w.id, w.name]))),
      () => undefined,
    );
  }, [api]);
  const workflowName = (id: string | null) => (id ? names[id] ?? id : "inline workflow");
  const open = (e: ExecutionSummary) => e.workflow_id && navigate({ page: "workflow", workflowId: e.workflow_id, executionId: e.id });
  return (
    <div className="page">
      <TopBar onSignOut={onSignOut}>
        <h1 className="page-title">Executions</h1>
      </TopBar>
      <main className="list-page">
        <RunningPanel api={api} workflowName={workflowName} onOpen={open} />
        <h2>All runs</h2>
        <ExecutionsTable api={api} workflowName={workflowName} onOpen={open} />
      </main>
    </div>
  );
}
