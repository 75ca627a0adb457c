import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { docsSection } from "./nodeDocs";

const doc = [
  "# Nodes",
  "## Built-in types",
  "### Triggers",
  "| type | parameters |",
  "|---|---|",
  "| `manual_trigger` | |",
  "| `webhook_trigger` | `secret` |",
  "#### Webhook answers",
  "Details.",
  "### `set`",
  "Sets values.",
  "### `if`",
  "Branches.",
  "## Errors",
  "Later.",
].join("\n");

describe("docsSection", () => {
  it("finds the section headed by the type, up to the next heading of its level", () => {
    expect(docsSection(doc, "set")).toBe("### `set`\nSets values.");
    expect(docsSection(doc, "if")).toBe("### `if`\nBranches.");
  });

  it("finds the section whose table lists the type, subsections included", () => {
    expect(docsSection(doc, "webhook_trigger")).toBe(
      "### Triggers\n| type | parameters |\n|---|---|\n| `manual_trigger` | |\n| `webhook_trigger` | `secret` |\n#### Webhook answers\nDetails.",
    );
  });

  it("answers null for a type the docs do not name", () => {
    expect(docsSection(doc, "mystery")).toBeNull();
  });

  it("has a section for every built-in type in docs/nodes.md", () => {
    const real = readFileSync(resolve(__dirname, "../../docs/nodes.md"), "utf8");
    const builtIn = ["manual_trigger", "webhook_trigger", "schedule_trigger", "error_trigger", "respond_to_webhook", "noop", "set", "if", "switch", "merge", "wait", "execute_workflow", "http_request", "code", "stop_and_error"];
    expect(builtIn.filter((t) => !docsSection(real, t))).toEqual([]);
  });
});
