// A form generated from a JSON Schema (a node type's parameters, a credential type's fields):
// text, number, checkbox and select fields for scalars, a JSON editor for objects, arrays and
// anything else, a password field for a secret (``writeOnly``) string, and room for a special
// editor of one field (the credential picker, the code editor).
import { useEffect, useState, type ReactNode } from "react";
import { fieldLabel } from "../labels";
import type { JsonSchema, JsonValue } from "../types";

export type FieldKind = "text" | "integer" | "number" | "boolean" | "select" | "json";

function resolve(schema: JsonSchema, root: JsonSchema): JsonSchema {
  if (schema.$ref?.startsWith("#/$defs/")) return root.$defs?.[schema.$ref.slice(8)] ?? schema;
  return schema;
}

/** The kind of input for a property (``anyOf`` with null: the optional version of the other). */
export function fieldKind(schema: JsonSchema): FieldKind {
  if (schema.enum) return "select";
  let types: string[] = [];
  if (Array.isArray(schema.anyOf)) types = schema.anyOf.map((s) => String(s.type ?? "any"));
  else if (Array.isArray(schema.type)) types = schema.type;
  else if (schema.type) types = [schema.type];
  types = types.filter((t) => t !== "null");
  if (types.length === 1 && ["integer", "number", "boolean"].includes(types[0])) return types[0] as FieldKind;
  if (types.length >= 1 && types.every((t) => ["string", "boolean", "integer", "number"].includes(t)) && types.includes("string"))
    return "text"; // e.g. an expression or a literal
  return "json";
}

/** What a special editor of one field gets (ParamForm's ``customInputs``). */
export interface CustomInputProps {
  id: string;
  value: JsonValue | undefined;
  onChange: (value: JsonValue | undefined) => void;
  describedBy: string | undefined;
  /** The API's problems with this field. */
  errors: string[];
}

export interface FieldProblem {
  field: string;
  msg: string;
}

function problemsFor(problems: FieldProblem[], path: string): string[] {
  return problems.filter((p) => p.field === path || p.field.startsWith(`${path}.`)).map((p) => p.msg);
}

export function FieldErrors({ id, messages }: { id: string; messages: string[] }) {
  if (!messages.length) return null;
  return (
    // The alert wraps the list: a list with role="alert" would no longer be a list for its items.
    <div id={id} role="alert">
      <ul className="field-errors">
        {messages.map((m, i) => (
          <li key={i}>⚠ {m}</li>
        ))}
      </ul>
    </div>
  );
}

function JsonField({
  id,
  value,
  onChange,
  describedBy,
  placeholder,
}: {
  id: string;
  value: JsonValue | undefined;
  onChange: (v: JsonValue | undefined) => void;
  describedBy?: string;
  placeholder?: string;
}) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setText(value === undefined ? "" : JSON.stringify(value, null, 2));
    setError(null);
  }, [JSON.stringify(value)]);
  return (
    <>
      <textarea
        id={id}
        className="code"
        rows={Math.min(10, Math.max(3, text.split("\n").length))}
        value={text}
        placeholder={placeholder}
        aria-describedby={describedBy}
        aria-invalid={error ? true : undefined}
        onChange={(e) => setText(e.target.value)}
        onBlur={() => {
          if (!text.trim()) {
            setError(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(text));
            setError(null);
          } catch (err) {
            setError(`Not valid JSON: ${(err as Error).message}`);
          }
        }}
      />
      {error && <p className="field-errors">⚠ {error}</p>}
    </>
  );
}

export function ParamForm({
  schema,
  values,
  onChange,
  problems,
  idPrefix,
  fieldPrefix = "parameters",
  placeholders = {},
  customInputs = {},
  textInput,
}: {
  schema: JsonSchema;
  values: Record<string, JsonValue> | undefined;
  onChange: (values: Record<string, JsonValue> | undefined) => void;
  problems: FieldProblem[];
  idPrefix: string;
  /** Where the fields are in the problems' paths: ``parameters.url``, ``data.token``. */
  fieldPrefix?: string;
  /** A field's placeholder instead of its default (a secret's mask, say). */
  placeholders?: Record<string, string>;
  /** A special editor for a field instead of the generic one. */
  customInputs?: Record<string, (props: CustomInputProps) => ReactNode>;
  /** The editor of every other text field that is not a secret (a node's: expressions). */
  textInput?: (props: CustomInputProps & { label: string; placeholder: string }) => ReactNode;
}) {
  const props = Object.entries(schema.properties ?? {});
  if (props.length === 0) return <p className="muted">This node type has no parameters.</p>;
  const required = new Set(schema.required ?? []);
  const current = values ?? {};

  function set(name: string, value: JsonValue | undefined) {
    const next = { ...current };
    if (value === undefined) delete next[name];
    else next[name] = value;
    onChange(Object.keys(next).length ? next : undefined);
  }

  return (
    <div className="form">
      {props.map(([name, raw]) => {
        const prop = resolve(raw, schema);
        const kind = fieldKind(prop);
        const id = `${idPrefix}-param-${name}`;
        const errors = problemsFor(problems, `${fieldPrefix}.${name}`);
        const errorId = `${id}-errors`;
        const helpId = `${id}-help`;
        const value = current[name];
        const label = (
          <label htmlFor={id}>
            {fieldLabel(name, prop.title)}
            {required.has(name) && <span aria-label="required"> *</span>}
            <code className="param-name">{name}</code>
          </label>
        );
        const describedBy = [prop.description ? helpId : "", errors.length ? errorId : ""].filter(Boolean).join(" ") || undefined;
        const custom = customInputs[name];
        let input;
        if (custom) {
          input = custom({ id, value, onChange: (v) => set(name, v), describedBy, errors });
        } else if (kind === "boolean") {
          input = (
            <input id={id} type="checkbox" checked={value === true} aria-describedby={describedBy} onChange={(e) => set(name, e.target.checked)} />
          );
        } else if (kind === "select") {
          input = (
            <select id={id} value={value === undefined ? "" : String(value)} aria-describedby={describedBy} onChange={(e) => set(name, e.target.value === "" ? undefined : e.target.value)}>
              {!required.has(name) && <option value="">(default{prop.default != null ? `: ${prop.default}` : ""})</option>}
              {(prop.enum ?? []).map((o) => (
                <option key={String(o)} value={String(o)}>
                  {String(o)}
                </option>
              ))}
            </select>
          );
        } else if (kind === "integer" || kind === "number") {
          input = (
            <input
              id={id}
              type="number"
              step={kind === "integer" ? 1 : "any"}
              min={prop.minimum}
              max={prop.maximum}
              value={typeof value === "number" ? value : ""}
              aria-invalid={errors.length ? true : undefined}
              aria-describedby={describedBy}
              onChange={(e) => set(name, e.target.value === "" ? undefined : Number(e.target.value))}
            />
          );
        } else if (kind === "text" && textInput && !prop.writeOnly) {
          input = textInput({
            id,
            value,
            onChange: (v) => set(name, v),
            describedBy,
            errors,
            label: fieldLabel(name, prop.title),
            placeholder: prop.default != null ? String(prop.default) : "",
          });
        } else if (kind === "text") {
          input = (
            <input
              id={id}
              // A secret is typed blind and never offered back by the browser's autofill.
              type={prop.writeOnly ? "password" : "text"}
              autoComplete={prop.writeOnly ? "new-password" : undefined}
              value={value === undefined || value === null ? "" : String(value)}
              placeholder={placeholders[name] ?? (prop.default != null ? String(prop.default) : "")}
              aria-invalid={errors.length ? true : undefined}
              aria-describedby={describedBy}
              onChange={(e) => set(name, e.target.value === "" ? undefined : e.target.value)}
            />
          );
        } else {
          input = <JsonField id={id} value={value} onChange={(v) => set(name, v)} describedBy={describedBy} placeholder={placeholders[name]} />;
        }
        return (
          <div className={`field${errors.length ? " invalid" : ""}`} key={name}>
            {label}
            {input}
            {prop.description && (
              <p className="help" id={helpId}>
                {prop.description}
              </p>
            )}
            {kind === "json" && !prop.description && <p className="help">JSON</p>}
            <FieldErrors id={errorId} messages={errors} />
          </div>
        );
      })}
    </div>
  );
}
