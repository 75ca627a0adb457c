import { useEffect, useState, type FormEvent } from "react";
import type { Api } from "../api";
import { navigate } from "../router";
import type { Workflow } from "../types";
import { formatTime } from "../format";
import { TopBar } from "./TopBar";

/** A new workflow starts with a manual trigger, so that it can run at once. */
export function starterWorkflow(name: string) {
  return {
    name,
    nodes: [{ id: "start", type: "manual_trigger", position: { x: 80, y: 160 } }],
    connections: [],
  };
}

export function WorkflowList({ api, onSignOut }: { api: Api; onSignOut: () => void }) {
  const [items, setItems] = useState<Workflow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [newName, setNewName] = useState("");
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  const [confirmDelete, setConfirmDelete] = useState<string | null>(null);

  const load = () =>
    api.listWorkflows().then(
      (page) => setItems(page.items),
      (e) => setError(e.message),
    );
  useEffect(() => {
    load();
  }, []);

  async function create(e: FormEvent) {
    e.preventDefault();
    try {
      const wf = await api.createWorkflow(starterWorkflow(newName.trim() || "My workflow"));
      navigate({ page: "workflow", workflowId: wf.id, executionId: null });
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function rename(e: FormEvent) {
    e.preventDefault();
    if (!renaming) return;
    try {
      const wf = await api.getWorkflow(renaming.id);
      const { name: _old, id: _id, version: _v, owner: _o, created_at: _c, updated_at: _u, ...def } = wf;
      await api.saveWorkflow(renaming.id, { ...def, name: renaming.name.trim() || wf.name }, wf.version);
      setRenaming(null);
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function remove(id: string) {
    try {
      await api.deleteWorkflow(id);
      setConfirmDelete(null);
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  return (
    <div className="page">
      <TopBar onSignOut={onSignOut}>
        <h1 className="page-title">Workflows</h1>
      </TopBar>
      <main className="list-page">
        <form className="new-workflow card" onSubmit={create}>
          <label htmlFor="new-name">New workflow</label>
          <input
            id="new-name"
            placeholder="Name, e.g. Order sync"
            value={newName}
            onChange={(e) => setNewName(e.target.value)}
          />
          <button className="primary" type="submit">
            + Create workflow
          </button>
        </form>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        {items === null ? (
          <p>Loading…</p>
        ) : items.length === 0 ? (
          <p className="empty">No workflows yet. Create one above: it starts with a manual trigger.</p>
        ) : (
          <table className="table workflows">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Nodes</th>
                <th scope="col">Version</th>
                <th scope="col">Updated</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((wf) => (
                <tr key={wf.id}>
                  <td>
                    {renaming?.id === wf.id ? (
                      <form className="inline" onSubmit={rename}>
                        <input
                          aria-label="New name"
                          autoFocus
                          value={renaming.name}
                          onChange={(e) => setRenaming({ id: wf.id, name: e.target.value })}
                          onKeyDown={(e) => e.key === "Escape" && setRenaming(null)}
                        />
                        <button type="submit">Save name</button>
                        <button type="button" className="ghost" onClick={() => setRenaming(null)}>
                          Cancel
                        </button>
                      </form>
                    ) : (
                      <a
                        href={`/workflows/${wf.id}`}
                        onClick={(e) => {
                          e.preventDefault();
                          navigate({ page: "workflow", workflowId: wf.id, executionId: null });
                        }}
                      >
                        {wf.name}
                      </a>
                    )}
                  </td>
                  <td>{wf.nodes.length}</td>
                  <td>v{wf.version}</td>
                  <td>{formatTime(wf.updated_at ?? null)}</td>
                  <td className="actions">
                    {confirmDelete === wf.id ? (
                      <>
                        <span>Delete “{wf.name}”?</span>
                        <button type="button" className="danger" onClick={() => remove(wf.id)}>
                          Yes, delete
                        </button>
                        <button type="button" className="ghost" onClick={() => setConfirmDelete(null)}>
                          Keep
                        </button>
                      </>
                    ) : (
                      <>
                        <button
                          type="button"
                          onClick={() => navigate({ page: "workflow", workflowId: wf.id, executionId: null })}
                        >
                          Open
                        </button>
                        <button type="button" onClick={() => setRenaming({ id: wf.id, name: wf.name })}>
                          Rename
                        </button>
                        <button type="button" className="danger-ghost" onClick={() => setConfirmDelete(wf.id)}>
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </main>
    </div>
  );
}
