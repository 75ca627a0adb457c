import { useEffect, useState } from "react";
import type { Api } from "../api";
import { navigate } from "../router";

/** `/executions/{id}`: looks the execution up and opens it in its workflow's editor. An
 * execution of an inline definition has no saved workflow to open it in: that is said. */
export function OpenExecution({ api, executionId }: { api: Api; executionId: string }) {
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    api.getExecution(executionId).then(
      (execution) => {
        if (!live) return;
        if (execution.workflow_id) navigate({ page: "workflow", workflowId: execution.workflow_id, executionId }, true);
        else setProblem(`Execution ${executionId} ran a workflow that was not saved: there is no editor to open it in.`);
      },
      (e: Error) => live && setProblem(e.message),
    );
    return () => {
      live = false;
    };
  }, [api, executionId]);
  return <main className="centered">{problem ? <p role="alert">{problem}</p> : <p>Opening execution…</p>}</main>;
}
