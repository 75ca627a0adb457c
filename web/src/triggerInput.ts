// The items a trigger is run with, typed in the UI as a JSON list of objects (docs/ui.md,
// "Run with input"): checked here first, and the API's 422 (at ["body", "input", i, ...])
// put back in words at the field.
import type { Item, ValidationIssue } from "./types";

/** ``text`` as a list of items; throws an Error that says what is wrong. */
export function parseTriggerItems(text: string): Item[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(value)) throw new Error("expected a list of items, [{...}, ...]");
  value.forEach((item, i) => {
    if (!item || typeof item !== "object" || Array.isArray(item)) throw new Error(`item ${i + 1} must be a JSON object`);
  });
  return value as Item[];
}

/** One of the API's problems with the input, as the field shows it: "item 2, key “a”: …". */
export function inputIssueText(issue: ValidationIssue): string {
  const loc = issue.loc.slice(0, 2).join(".") === "body.input" ? issue.loc.slice(2) : issue.loc;
  const [index, ...rest] = loc;
  const where = [typeof index === "number" ? `item ${index + 1}` : "", rest.length ? `key “${rest.join(".")}”` : ""]
    .filter(Boolean)
    .join(", ");
  return where ? `${where}: ${issue.msg}` : issue.msg;
}

/** Whether a 422 problem is about the input (shown at the field) rather than the workflow. */
export function isInputIssue(issue: ValidationIssue): boolean {
  return issue.loc[0] === "body" && issue.loc[1] === "input";
}

const STORAGE = "nodedrop.triggerInput";

/** The items last typed for a trigger in this tab, to run again with. */
export function rememberedInput(workflowId: string, trigger: string): string | null {
  return sessionStorage.getItem(`${STORAGE}.${workflowId}.${trigger}`);
}

export function rememberInput(workflowId: string, trigger: string, text: string): void {
  sessionStorage.setItem(`${STORAGE}.${workflowId}.${trigger}`, text);
}
