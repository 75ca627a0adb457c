import { useEffect, useMemo, useState } from "react";
import { Api, ApiError, storeKey, storedKey } from "./api";
import { CredentialsPage } from "./components/CredentialsPage";
import { Editor } from "./components/Editor";
import { ExecutionsPage } from "./components/ExecutionsPage";
import { OpenExecution } from "./components/OpenExecution";
import { SignIn } from "./components/SignIn";
import { WorkflowList } from "./components/WorkflowList";
import { useRoute } from "./router";
import type { NodeType } from "./types";

export function App() {
  const [key, setKey] = useState<string | null>(() => storedKey());
  const [nodeTypes, setNodeTypes] = useState<NodeType[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const route = useRoute();
  const api = useMemo(() => (key ? new Api(key) : null), [key]);

  useEffect(() => {
    if (!api) return;
    api.nodeTypes().then(setNodeTypes, (e: ApiError) => {
      if (e.status === 401) signOut();
      else setError(e.message);
    });
  }, [api]);

  function signIn(newKey: string, types: NodeType[]) {
    storeKey(newKey);
    setNodeTypes(types);
    setKey(newKey);
  }
  function signOut() {
    storeKey(null);
    setKey(null);
    setNodeTypes(null);
  }

  if (!api) return <SignIn onSignedIn={signIn} />;
  if (!nodeTypes)
    return <main className="centered">{error ? <p role="alert">{error}</p> : <p>Loading…</p>}</main>;
  if (route.page === "workflow")
    return (
      <Editor
        key={route.workflowId}
        api={api}
        nodeTypes={nodeTypes}
        workflowId={route.workflowId}
        executionId={route.executionId}
        onSignOut={signOut}
      />
    );
  if (route.page === "credentials") return <CredentialsPage api={api} onSignOut={signOut} />;
  if (route.page === "executions") return <ExecutionsPage api={api} onSignOut={signOut} />;
  if (route.page === "execution") return <OpenExecution api={api} executionId={route.executionId} />;
  return <WorkflowList api={api} onSignOut={signOut} />;
}
