// The side panel's form for one node: id, name, parameters (from the type's schema), retry,
// timeout and on-error settings. Every change goes straight into the draft definition.
import { useEffect, useState, type ReactNode } from "react";
import type { Api } from "../api";
import { ID_PATTERN } from "../graph";
import type { ErrorInfo, NodeDef, NodeType, OnError, RetryPolicy } from "../types";
import { CodeSourceField } from "./CodeSourceField";
import { CredentialPicker } from "./CredentialPicker";
import { ExpressionField, type ExpressionTools } from "./ExpressionField";
import { NodeDocs } from "./NodeDocs";
import { WebhookUrl } from "./WebhookUrl";
import { FieldErrors, ParamForm, type CustomInputProps, type FieldProblem } from "./ParamForm";

/** What the special parameter editors need from the editor around the panel. Without it (a
 * test of the generic form) every parameter gets the generic field. */
export interface NodeTools {
  api: Api;
  /** Runs this node alone (node mode) with the input its parents last recorded. */
  testRun: () => void;
  /** testRun can run now: editable, and no execution of this editor running. */
  canTestRun: boolean;
  /** This node's error in the execution shown, if it failed there. */
  runError: ErrorInfo | null;
  /** The execution shown (tells one run's error from the same error of another run). */
  runId: string | null;
  /** The last run's data and the API, for the expression editor of text parameters. */
  expressions?: ExpressionTools;
}

type CustomInputs = Record<string, (props: CustomInputProps) => ReactNode>;

/** The special editors of a node type's parameters: the credential picker of http_request, the
 * Python editor of code. */
function customInputsFor(type: string, tools: NodeTools | undefined, readOnly: boolean): CustomInputs {
  if (!tools) return {};
  if (type === "code")
    return {
      source: (p) => (
        <CodeSourceField
          id={p.id}
          value={typeof p.value === "string" ? p.value : ""}
          onChange={p.onChange}
          describedBy={p.describedBy}
          saveProblems={p.errors}
          runError={tools.runError}
          runId={tools.runId}
          onTestRun={tools.testRun}
          canTestRun={tools.canTestRun}
          readOnly={readOnly}
        />
      ),
    };
  if (type === "http_request")
    return {
      credential: (p) => (
        <CredentialPicker
          api={tools.api}
          id={p.id}
          value={typeof p.value === "string" ? p.value : undefined}
          onChange={p.onChange}
          describedBy={p.describedBy}
          invalid={p.errors.length > 0}
        />
      ),
    };
  return {};
}

const ON_ERROR_HELP: Record<OnError, string> = {
  fail: "fail: the whole execution fails",
  continue: "continue: the node is marked failed and its outputs deliver nothing",
  error_output: "error output: failed items go out on an extra “error” port",
};

function errorsAt(problems: FieldProblem[], field: string) {
  return problems.filter((p) => p.field === field || p.field.startsWith(`${field}.`)).map((p) => p.msg);
}

function NumberField({
  id,
  label,
  value,
  onChange,
  errors,
  help,
  min,
  step,
}: {
  id: string;
  label: string;
  value: number | undefined;
  onChange: (v: number | undefined) => void;
  errors: string[];
  help?: string;
  min?: number;
  step?: number | "any";
}) {
  return (
    <div className={`field${errors.length ? " invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="number"
        min={min}
        step={step ?? 1}
        value={value ?? ""}
        placeholder={help}
        aria-invalid={errors.length ? true : undefined}
        aria-describedby={errors.length ? `${id}-errors` : undefined}
        onChange={(e) => onChange(e.target.value === "" ? undefined : Number(e.target.value))}
      />
      <FieldErrors id={`${id}-errors`} messages={errors} />
    </div>
  );
}

export function NodeSettings({
  def,
  type,
  problems,
  takenIds,
  readOnly,
  onChange,
  onRename,
  onDelete,
  tools,
  webhookUrl = null,
}: {
  def: NodeDef;
  type: NodeType | undefined;
  problems: FieldProblem[];
  takenIds: string[];
  readOnly: boolean;
  onChange: (def: NodeDef) => void;
  onRename: (newId: string) => void;
  onDelete: () => void;
  tools?: NodeTools;
  /** A webhook trigger's URL, once the workflow is saved with the node. */
  webhookUrl?: string | null;
}) {
  const [idText, setIdText] = useState(def.id);
  useEffect(() => setIdText(def.id), [def.id]);
  const idError =
    idText === def.id
      ? null
      : !ID_PATTERN.test(idText)
        ? "Starts with a letter; letters, digits, _ and - only (at most 64)."
        : takenIds.includes(idText)
          ? "Another node has this id."
          : null;
  const retry = def.retry ?? {};
  const setRetry = (field: keyof RetryPolicy, value: number | undefined) => {
    const next: RetryPolicy = { ...retry };
    if (value === undefined) delete next[field];
    else (next as Record<string, unknown>)[field] = value;
    const copy: NodeDef = { ...def, retry: next };
    if (Object.keys(next).length === 0) delete copy.retry;
    onChange(copy);
  };
  const prefix = `node-${def.id}`;

  return (
    <fieldset className="node-settings" disabled={readOnly}>
      <div className={`field${idError || errorsAt(problems, "id").length ? " invalid" : ""}`}>
        <label htmlFor={`${prefix}-id`}>Node ID</label>
        <input
          id={`${prefix}-id`}
          value={idText}
          onChange={(e) => setIdText(e.target.value)}
          onBlur={() => (idError || idText === def.id ? setIdText(def.id) : onRename(idText))}
          onKeyDown={(e) => e.key === "Enter" && !idError && idText !== def.id && onRename(idText)}
        />
        <FieldErrors id={`${prefix}-id-errors`} messages={[...(idError ? [idError] : []), ...errorsAt(problems, "id")]} />
      </div>
      <div className="field">
        <label htmlFor={`${prefix}-name`}>Display name (optional)</label>
        <input
          id={`${prefix}-name`}
          value={def.name ?? ""}
          onChange={(e) => {
            const copy: NodeDef = { ...def, name: e.target.value };
            if (!e.target.value) delete copy.name;
            onChange(copy);
          }}
        />
      </div>

      <NodeDocs key={def.type} type={def.type} />

      <h3>Parameters</h3>
      {def.type === "webhook_trigger" && <WebhookUrl id={`${prefix}-webhook-url`} url={webhookUrl} />}
      {def.type === "webhook_trigger" && !def.parameters?.secret && (
        <p className="unauthenticated" role="note">
          No secret: anyone who knows this webhook’s URL can run the workflow. Set a secret, and
          callers send it or sign their requests with it.
        </p>
      )}
      {type ? (
        <ParamForm
          schema={type.parameters_schema}
          values={def.parameters}
          idPrefix={prefix}
          problems={problems}
          customInputs={customInputsFor(def.type, tools, readOnly)}
          textInput={
            tools?.expressions
              ? (p) => (
                  <ExpressionField
                    id={p.id}
                    label={p.label}
                    value={p.value === undefined || p.value === null ? "" : String(p.value)}
                    onChange={p.onChange}
                    describedBy={p.describedBy}
                    invalid={p.errors.length > 0}
                    placeholder={p.placeholder}
                    readOnly={readOnly}
                    tools={tools.expressions!}
                  />
                )
              : undefined
          }
          onChange={(parameters) => {
            const copy: NodeDef = { ...def, parameters };
            if (!parameters) delete copy.parameters;
            onChange(copy);
          }}
        />
      ) : (
        <p className="error">Unknown node type “{def.type}”.</p>
      )}
      <FieldErrors id={`${prefix}-type-errors`} messages={errorsAt(problems, "type")} />
      <FieldErrors
        id={`${prefix}-other-errors`}
        messages={problems
          .filter((p) => !/^(id|type|parameters\.[^.]+|retry|timeout_ms|on_error)(\.|$)/.test(p.field) || p.field === "parameters")
          .map((p) => (p.field ? `${p.field}: ${p.msg}` : p.msg))}
      />

      {type?.category !== "trigger" && (
        <>
          <h3>Retries and timeout</h3>
          <div className="grid2">
            <NumberField id={`${prefix}-max-attempts`} label="Max attempts" min={1} value={retry.max_attempts} help="1 (no retry)" errors={errorsAt(problems, "retry.max_attempts")} onChange={(v) => setRetry("max_attempts", v)} />
            <NumberField id={`${prefix}-initial-interval`} label="First retry after (ms)" min={0} value={retry.initial_interval_ms} help="1000" errors={errorsAt(problems, "retry.initial_interval_ms")} onChange={(v) => setRetry("initial_interval_ms", v)} />
            <NumberField id={`${prefix}-backoff`} label="Backoff coefficient" min={1} step="any" value={retry.backoff_coefficient} help="2.0" errors={errorsAt(problems, "retry.backoff_coefficient")} onChange={(v) => setRetry("backoff_coefficient", v)} />
            <NumberField id={`${prefix}-max-interval`} label="Max interval (ms)" min={0} value={retry.max_interval_ms} help="100 × first" errors={errorsAt(problems, "retry.max_interval_ms")} onChange={(v) => setRetry("max_interval_ms", v)} />
          </div>
          <div className="field">
            <label htmlFor={`${prefix}-nonretryable`}>Errors not to retry (comma separated)</label>
            <input
              id={`${prefix}-nonretryable`}
              value={(retry.non_retryable_errors ?? []).join(", ")}
              placeholder="e.g. HttpClientError"
              onChange={(e) => {
                const list = e.target.value.split(",").map((s) => s.trim()).filter(Boolean);
                const next: RetryPolicy = { ...retry, non_retryable_errors: list };
                if (!list.length) delete next.non_retryable_errors;
                const copy: NodeDef = { ...def, retry: next };
                if (!Object.keys(next).length) delete copy.retry;
                onChange(copy);
              }}
            />
            <FieldErrors id={`${prefix}-nonretryable-errors`} messages={[...errorsAt(problems, "retry.non_retryable_errors"), ...problems.filter((p) => p.field === "retry").map((p) => p.msg)]} />
          </div>
          <NumberField
            id={`${prefix}-timeout`}
            label="Timeout per attempt (ms)"
            min={1}
            value={def.timeout_ms}
            help="none"
            errors={errorsAt(problems, "timeout_ms")}
            onChange={(v) => {
              const copy: NodeDef = { ...def, timeout_ms: v };
              if (v === undefined) delete copy.timeout_ms;
              onChange(copy);
            }}
          />
          <div className={`field${errorsAt(problems, "on_error").length ? " invalid" : ""}`}>
            <label htmlFor={`${prefix}-on-error`}>When the node fails</label>
            <select
              id={`${prefix}-on-error`}
              value={def.on_error ?? "fail"}
              onChange={(e) => {
                const copy: NodeDef = { ...def, on_error: e.target.value as OnError };
                if (e.target.value === "fail") delete copy.on_error;
                onChange(copy);
              }}
            >
              {(Object.keys(ON_ERROR_HELP) as OnError[]).map((o) => (
                <option key={o} value={o}>
                  {ON_ERROR_HELP[o]}
                </option>
              ))}
            </select>
            <FieldErrors id={`${prefix}-on-error-errors`} messages={errorsAt(problems, "on_error")} />
          </div>
        </>
      )}
      {!readOnly && (
        <button type="button" className="danger-ghost" onClick={onDelete}>
          Delete node
        </button>
      )}
    </fieldset>
  );
}
