// Every workflow's executions (of the signed-in user; all of them for the admin), newest first.
import { useEffect, useState } from "react";
import type { Api } from "../api";
import { navigate } from "../router";
import { ExecutionsTable } from "./ExecutionsTable";
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
  return (
    <div className="page">
      <TopBar onSignOut={onSignOut}>
        <h1 className="page-title">Executions</h1>
      </TopBar>
      <main className="list-page">
        <ExecutionsTable
          api={api}
          workflowName={(id) => (id ? names[id] ?? id : "inline workflow")}
          onOpen={(e) => e.workflow_id && navigate({ page: "workflow", workflowId: e.workflow_id, executionId: e.id })}
        />
      </main>
    </div>
  );
}
