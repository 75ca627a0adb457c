// Creates a credential or edits one: the type (new ones only: a type never changes), the name,
// and the type's fields as a form generated from its JSON Schema. Secret fields are write-only:
// when editing, each shows its mask as a placeholder and a blank one keeps the stored value
// (the API's PUT keeps a secret field left out of `data`).
import { useState, type FormEvent } from "react";
import { ApiError, type Api } from "../api";
import type { Credential, CredentialType, JsonValue } from "../types";
import { FieldErrors, ParamForm, type FieldProblem } from "./ParamForm";

/** Where the API's refusal belongs: ``type``, ``name``, ``data.<field>``; the rest is shown
 * above the form. ``loc`` is ``["body", "data", "token"]``; a 409 is a name already taken. */
export function credentialProblems(error: unknown, type: CredentialType | undefined): { fields: FieldProblem[]; general: string[] } {
  if (!(error instanceof ApiError)) return { fields: [], general: [String((error as Error)?.message ?? error)] };
  if (error.status === 409) return { fields: [{ field: "name", msg: error.message }], general: [] };
  if (error.status !== 422 || !error.issues.length) return { fields: [], general: [error.message] };
  const known = new Set(Object.keys(type?.fields_schema.properties ?? {}));
  const fields: FieldProblem[] = [];
  const general: string[] = [];
  for (const issue of error.issues) {
    const loc = issue.loc[0] === "body" ? issue.loc.slice(1) : issue.loc;
    const field = loc.join(".");
    const shownAtField = loc[0] === "name" || loc[0] === "type" || (loc[0] === "data" && known.has(String(loc[1])));
    if (shownAtField) fields.push({ field, msg: issue.msg });
    else general.push(field ? `${field}: ${issue.msg}` : issue.msg);
  }
  return { fields, general };
}

/** The placeholder of a stored secret: its mask (a map's masks), and how to keep it. */
function keepPlaceholder(masked: JsonValue | undefined): string {
  const shown = typeof masked === "string" ? masked : JSON.stringify(masked ?? "****");
  return `stored: ${shown} (leave blank to keep)`;
}

export function CredentialForm({
  api,
  types,
  existing,
  onSaved,
  onCancel,
}: {
  api: Api;
  types: CredentialType[];
  /** The credential to edit; none: create one. */
  existing?: Credential;
  onSaved: (credential: Credential) => void;
  onCancel: () => void;
}) {
  const [typeName, setTypeName] = useState(existing?.type ?? types[0]?.type ?? "");
  const [name, setName] = useState(existing?.name ?? "");
  const [values, setValues] = useState<Record<string, JsonValue> | undefined>(existing ? { ...existing.fields } : undefined);
  const [problems, setProblems] = useState<{ fields: FieldProblem[]; general: string[] }>({ fields: [], general: [] });
  const [saving, setSaving] = useState(false);
  const type = types.find((t) => t.type === typeName);
  const at = (field: string) => problems.fields.filter((p) => p.field === field).map((p) => p.msg);
  const placeholders = existing
    ? Object.fromEntries((type?.secret_fields ?? []).map((f) => [f, keepPlaceholder(existing.secrets[f])]))
    : {};

  async function submit(e: FormEvent) {
    e.preventDefault();
    setSaving(true);
    const input = { type: typeName, name: name.trim(), data: values ?? {} };
    try {
      const saved = existing ? await api.updateCredential(existing.id, input) : await api.createCredential(input);
      onSaved(saved);
    } catch (error) {
      setProblems(credentialProblems(error, type));
    } finally {
      setSaving(false);
    }
  }

  const prefix = existing ? `cred-${existing.id}` : "cred-new";
  return (
    <form className="credential-form card" onSubmit={submit} aria-label={existing ? `Edit credential ${existing.name}` : "New credential"}>
      <h2>{existing ? `Edit “${existing.name}”` : "New credential"}</h2>
      {problems.general.length > 0 && (
        <ul className="error" role="alert">
          {problems.general.map((g, i) => (
            <li key={i}>{g}</li>
          ))}
        </ul>
      )}
      <div className={`field${at("type").length ? " invalid" : ""}`}>
        <label htmlFor={`${prefix}-type`}>Type</label>
        <select
          id={`${prefix}-type`}
          value={typeName}
          disabled={!!existing}
          aria-describedby={`${prefix}-type-help`}
          onChange={(e) => {
            // Fields of one type, and the API's problems with them, mean nothing to another.
            setTypeName(e.target.value);
            setValues(undefined);
            setProblems({ fields: [], general: [] });
          }}
        >
          {types.map((t) => (
            <option key={t.type} value={t.type}>
              {t.display_name}
            </option>
          ))}
        </select>
        <p className="help" id={`${prefix}-type-help`}>
          {type?.description}
          {existing && " A credential's type cannot change: create another."}
        </p>
        <FieldErrors id={`${prefix}-type-errors`} messages={at("type")} />
      </div>
      <div className={`field${at("name").length ? " invalid" : ""}`}>
        <label htmlFor={`${prefix}-name`}>
          Name<span aria-label="required"> *</span>
        </label>
        <input
          id={`${prefix}-name`}
          value={name}
          required
          maxLength={200}
          placeholder="e.g. GitHub"
          aria-invalid={at("name").length ? true : undefined}
          aria-describedby={at("name").length ? `${prefix}-name-errors` : undefined}
          onChange={(e) => setName(e.target.value)}
        />
        <FieldErrors id={`${prefix}-name-errors`} messages={at("name")} />
      </div>
      {type && (
        <ParamForm
          key={type.type}
          schema={type.fields_schema}
          values={values}
          onChange={setValues}
          problems={problems.fields}
          idPrefix={prefix}
          fieldPrefix="data"
          placeholders={placeholders}
        />
      )}
      {existing && type && type.secret_fields.length > 0 && (
        <p className="muted">Secret fields are never shown again once saved: leave them blank to keep what is stored.</p>
      )}
      <div className="modal-actions">
        <button type="button" className="ghost" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={saving || !type}>
          {saving ? "Saving…" : existing ? "Save credential" : "Create credential"}
        </button>
      </div>
    </form>
  );
}
