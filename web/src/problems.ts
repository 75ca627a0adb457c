// A draft may be saved with problems; only a run needs a valid definition. These read the
// API's answers about them (docs/api.md, "Drafts").
import type { ValidationIssue } from "./types";

/** "1 problem", "3 problems". */
export function problemCount(count: number): string {
  return `${count} problem${count === 1 ? "" : "s"}`;
}

/** The problems of a run refused because the saved workflow has some (a 422 whose ``loc``s
 * start with ``body.workflow_id``), located within the definition as a save answers them;
 * none for any other refusal (a bad input, a parent without output...). */
export function runProblems(error: { status: number; issues: ValidationIssue[] }): ValidationIssue[] {
  if (error.status !== 422) return [];
  const prefix = ["body", "workflow_id"];
  const ours = error.issues.filter((i) => prefix.every((part, at) => i.loc?.[at] === part));
  if (!ours.length || ours.length !== error.issues.length) return [];
  return ours.map((i) => ({ ...i, loc: i.loc.slice(prefix.length) }));
}
