// The `credential` parameter of http_request: one of the user's credentials, chosen by name and
// stored by id (only the id travels in events), or a new one created in place.
import { useEffect, useState } from "react";
import { createPortal } from "react-dom";
import type { Api } from "../api";
import type { Credential, CredentialType } from "../types";
import { CredentialForm } from "./CredentialForm";

/** The select's value for "create a new credential" (never a credential id: ids have no space). */
const CREATE_NEW = "create new";

export function CredentialPicker({
  api,
  id,
  value,
  onChange,
  describedBy,
  invalid,
}: {
  api: Api;
  id: string;
  /** The credential id stored in the parameter. */
  value: string | undefined;
  onChange: (credentialId: string | undefined) => void;
  describedBy?: string;
  invalid?: boolean;
}) {
  const [credentials, setCredentials] = useState<Credential[] | null>(null);
  const [types, setTypes] = useState<CredentialType[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);

  useEffect(() => {
    Promise.all([api.listCredentials(), api.credentialTypes()]).then(
      ([list, credentialTypes]) => {
        setCredentials(list);
        setTypes(credentialTypes);
      },
      (e: Error) => setError(e.message),
    );
  }, [api]);

  const typeName = (type: string) => types.find((t) => t.type === type)?.display_name ?? type;
  // A stored id the list lacks (deleted, or another user's) stays visible rather than being
  // silently replaced by "(none)"; the run would fail with CredentialError.
  const unknown = value !== undefined && credentials !== null && !credentials.some((c) => c.id === value);

  return (
    <>
      <select
        id={id}
        value={value ?? ""}
        aria-describedby={describedBy}
        aria-invalid={invalid || unknown ? true : undefined}
        onChange={(e) => {
          if (e.target.value === CREATE_NEW) setCreating(true);
          else onChange(e.target.value === "" ? undefined : e.target.value);
        }}
      >
        <option value="">(none)</option>
        {credentials === null && value !== undefined && <option value={value}>{value}</option>}
        {unknown && <option value={value}>unknown credential {value}</option>}
        {(credentials ?? []).map((c) => (
          <option key={c.id} value={c.id}>
            {c.name} ({typeName(c.type)})
          </option>
        ))}
        <option value={CREATE_NEW} disabled={credentials === null}>
          + Create new credential…
        </option>
      </select>
      {error && <p className="field-errors">⚠ Cannot list your credentials: {error}</p>}
      {unknown && <p className="field-errors">⚠ No credential of yours has this id (deleted?): the node would fail.</p>}
      {creating &&
        createPortal(
          <div className="modal-backdrop" onKeyDown={(e) => e.key === "Escape" && setCreating(false)}>
            <div className="modal" role="dialog" aria-modal="true" aria-label="New credential">
              <CredentialForm
                api={api}
                types={types}
                onCancel={() => setCreating(false)}
                onSaved={(saved) => {
                  setCredentials((list) => [saved, ...(list ?? [])]);
                  setCreating(false);
                  onChange(saved.id);
                }}
              />
            </div>
          </div>,
          document.body,
        )}
    </>
  );
}
