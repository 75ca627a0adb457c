// The user's credentials (docs/credentials.md): the list with where each was last used, and
// creating, editing and deleting them. Secret values are never shown, only their masks.
import { useEffect, useState } from "react";
import type { Api } from "../api";
import { formatTime } from "../format";
import type { Credential, CredentialType, CredentialUse } from "../types";
import { CredentialForm } from "./CredentialForm";
import { TopBar } from "./TopBar";

function LastUsed({ use }: { use: CredentialUse | null }) {
  if (!use) return <span className="muted">never</span>;
  return (
    <>
      {formatTime(use.at)}
      {use.node && (
        <>
          {" "}
          by node <code>{use.node}</code>
        </>
      )}
      {use.execution_id && (
        <span className="muted">
          {" "}
          (execution <code>{use.execution_id}</code>)
        </span>
      )}
    </>
  );
}

export function CredentialsPage({ api, onSignOut }: { api: Api; onSignOut: () => void }) {
  const [items, setItems] = useState<Credential[] | null>(null);
  const [types, setTypes] = useState<CredentialType[]>([]);
  const [error, setError] = useState<string | null>(null);
  /** The form shown: a new credential, or the one being edited. */
  const [editing, setEditing] = useState<"new" | Credential | null>(null);
  const [confirmDelete, setConfirmDelete] = useState<string | null>(null);

  const load = () =>
    Promise.all([api.listCredentials(), api.credentialTypes()]).then(
      ([credentials, credentialTypes]) => {
        setItems(credentials);
        setTypes(credentialTypes);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  useEffect(() => {
    void load();
  }, []);

  async function remove(id: string) {
    try {
      await api.deleteCredential(id);
      setConfirmDelete(null);
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const typeName = (type: string) => types.find((t) => t.type === type)?.display_name ?? type;

  return (
    <div className="page">
      <TopBar onSignOut={onSignOut}>
        <h1 className="page-title">Credentials</h1>
      </TopBar>
      <main className="list-page">
        <p className="muted">
          What nodes need to authenticate (a token, a password, an OAuth2 client), kept apart from
          workflows: a node names a credential by its id, and only a runner ever reads the secret.
        </p>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        {editing ? (
          <CredentialForm
            key={editing === "new" ? "new" : editing.id}
            api={api}
            types={types}
            existing={editing === "new" ? undefined : editing}
            onCancel={() => setEditing(null)}
            onSaved={() => {
              setEditing(null);
              void load();
            }}
          />
        ) : (
          <div>
            <button type="button" className="primary" disabled={items === null} onClick={() => setEditing("new")}>
              + New credential
            </button>
          </div>
        )}
        {items === null ? (
          !error && <p>Loading…</p>
        ) : items.length === 0 ? (
          <p className="empty">No credentials yet.</p>
        ) : (
          <table className="table credentials">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Last used</th>
                <th scope="col">Updated</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((c) => (
                <tr key={c.id}>
                  <td>
                    {c.name}
                    <div className="muted small">
                      <code>{c.id}</code>
                    </div>
                  </td>
                  <td>{typeName(c.type)}</td>
                  <td>
                    <LastUsed use={c.last_used} />
                  </td>
                  <td>{formatTime(c.updated_at)}</td>
                  <td className="actions">
                    {confirmDelete === c.id ? (
                      <>
                        <span>Delete “{c.name}”? Nodes that name it will fail.</span>
                        <button type="button" className="danger" onClick={() => void remove(c.id)}>
                          Yes, delete
                        </button>
                        <button type="button" className="ghost" onClick={() => setConfirmDelete(null)}>
                          Keep
                        </button>
                      </>
                    ) : (
                      <>
                        <button type="button" aria-label={`Edit ${c.name}`} onClick={() => setEditing(c)}>
                          Edit
                        </button>
                        <button type="button" className="danger-ghost" aria-label={`Delete ${c.name}`} onClick={() => setConfirmDelete(c.id)}>
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
