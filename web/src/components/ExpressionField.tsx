// A text parameter of a node that may hold `{{ }}` expressions. Plain text stays a plain input;
// a value with `{{` (or the ƒx button) gets the expression editor: highlighting, completion,
// the error at its characters, and a live preview of the value for the first item of the last
// run, rendered by the API's evaluator (debounced). A click on a field of the node view's
// tables inserts its expression into the field focused last.
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { ApiError, type Api } from "../api";
import { insertExpression, type ExpressionData } from "../expressions";
import { forgetExpressionTarget, setExpressionTarget, type ExpressionTarget } from "../expressionTarget";
import type { JsonValue } from "../types";
import type { ErrorMark, ExpressionEditorHandle } from "./ExpressionEditor";
import "./expressions.css";

const ExpressionEditor = lazy(() => import("./ExpressionEditor").then((m) => ({ default: m.ExpressionEditor })));

/** How long typing must pause before the preview is asked for. */
export const PREVIEW_DELAY_MS = 300;

export interface ExpressionTools {
  api: Api;
  data: ExpressionData;
  /** `execution` in the preview's scope: the last run's id and trigger. */
  execution: Record<string, string>;
}

type Preview = { value: JsonValue } | { error: ErrorMark } | { failed: string };

function shown(value: JsonValue): string {
  return typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value, null, 1);
}

export function ExpressionField({
  id,
  label,
  value,
  onChange,
  describedBy,
  invalid,
  placeholder,
  readOnly,
  tools,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string | undefined) => void;
  describedBy?: string;
  invalid: boolean;
  placeholder?: string;
  readOnly: boolean;
  tools: ExpressionTools;
}) {
  // Once an expression (typed, or asked for with ƒx), the field stays an editor while shown,
  // even emptied: switching back to a plain input mid-edit would take the focus away.
  const [sticky, setSticky] = useState(false);
  const expression = sticky || value.includes("{{");
  useEffect(() => {
    if (value.includes("{{")) setSticky(true);
  }, [value]);
  // The plain input had the focus when it became an editor: the editor takes it over.
  const [focusEditor, setFocusEditor] = useState(false);
  const [preview, setPreview] = useState<Preview | null>(null);
  const editor = useRef<ExpressionEditorHandle>(null);
  const plain = useRef<HTMLInputElement>(null);
  const latestValue = useRef(value);
  latestValue.current = value;

  // The target of table clicks, while this field is the last focused.
  const target = useRef<ExpressionTarget>({
    label,
    insert(expr: string) {
      if (editor.current) {
        editor.current.insert((text, at) => insertExpression(text, expr, at));
        return;
      }
      const next = insertExpression(latestValue.current, expr);
      setFocusEditor(true);
      onChangeRef.current(next.text);
    },
  });
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  useEffect(() => () => forgetExpressionTarget(target.current), []);
  const focused = () => setExpressionTarget(target.current);

  const previewKey = JSON.stringify([value, tools.data.item, tools.data.nodes, tools.execution]);
  useEffect(() => {
    if (!expression || !value.includes("{{")) {
      setPreview(null);
      return;
    }
    let current = true;
    const timer = setTimeout(() => {
      tools.api
        .previewExpression(value, { item: tools.data.item ?? {}, nodes: tools.data.nodes, execution: tools.execution })
        .then((r) => current && setPreview({ value: r.value }))
        .catch((e: unknown) => {
          if (!current) return;
          const issue = e instanceof ApiError && e.status === 422 ? e.issues[0] : undefined;
          if (issue?.ctx && typeof issue.ctx.start === "number")
            setPreview({ error: { from: issue.ctx.start, to: issue.ctx.end ?? issue.ctx.start + 1, message: issue.msg } });
          else setPreview({ failed: e instanceof Error ? e.message : String(e) });
        });
    }, PREVIEW_DELAY_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [previewKey, expression]);

  const previewId = `${id}-preview`;
  const described = [describedBy, expression ? previewId : ""].filter(Boolean).join(" ") || undefined;
  const errorMark = preview && "error" in preview ? preview.error : null;

  return (
    <div className="expression-field">
      <div className="expression-row">
        {expression ? (
          <Suspense fallback={<span className="muted">Loading the expression editor…</span>}>
            <ExpressionEditor
              ref={editor}
              id={id}
              label={label}
              value={value}
              onChange={(text) => onChange(text === "" ? undefined : text)}
              onFocus={focused}
              data={tools.data}
              error={errorMark}
              describedBy={described}
              readOnly={readOnly}
              autoFocus={focusEditor}
            />
          </Suspense>
        ) : (
          <input
            id={id}
            ref={plain}
            type="text"
            value={value}
            placeholder={placeholder}
            readOnly={readOnly}
            aria-invalid={invalid ? true : undefined}
            aria-describedby={describedBy}
            onFocus={focused}
            onChange={(e) => {
              if (e.target.value.includes("{{")) setFocusEditor(true);
              onChange(e.target.value === "" ? undefined : e.target.value);
            }}
          />
        )}
        {!readOnly && !expression && (
          <button
            type="button"
            className="ghost expression-toggle"
            aria-label={`ƒx: write ${label} as an expression`}
            title="Write this field as an expression ({{ … }})"
            onClick={() => {
              setSticky(true);
              setFocusEditor(true);
              focused();
              if (!value.includes("{{")) onChange(`${value}{{  }}`);
            }}
          >
            ƒx
          </button>
        )}
      </div>
      {expression && (
        <div className="expression-preview" id={previewId} aria-live="polite">
          {preview === null ? (
            <span className="muted">Preview…</span>
          ) : "value" in preview ? (
            <>
              <span className="muted">
                {tools.data.item ? "Result for the first input item of the last run:" : "Result (no input recorded yet: item is {}):"}
              </span>{" "}
              <code className="preview-value">{shown(preview.value)}</code>
            </>
          ) : "error" in preview ? (
            <span className="error" data-testid={`${id}-expression-error`}>
              ⚠ {preview.error.message}
            </span>
          ) : (
            <span className="error">⚠ No preview: {preview.failed}</span>
          )}
        </div>
      )}
    </div>
  );
}
