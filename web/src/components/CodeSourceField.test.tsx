import { EditorView } from "@codemirror/view";
import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { NodeDef, NodeType } from "../types";
import { fakeApi } from "./credentialFixtures";
import { NodeSettings, type NodeTools } from "./NodeSettings";

const codeType: NodeType = {
  type: "code",
  display_name: "Code",
  category: "action",
  parameters_schema: {
    type: "object",
    required: ["source"],
    properties: {
      source: { type: "string", title: "Source", description: "Python defining main(items, ctx)" },
      mode: { enum: ["all_items", "each_item"], default: "all_items", type: "string", title: "Mode" },
    },
  },
  outputs: ["main"],
};

const SOURCE = "def helper(x):\n    return 1 / 0\n\ndef main(items, ctx):\n    return [helper(i) for i in items]\n";
const DEF: NodeDef = { id: "score", type: "code", parameters: { source: SOURCE } };

async function settings(overrides: Partial<NodeTools> = {}, problems: { field: string; msg: string }[] = []) {
  const tools: NodeTools = { api: fakeApi([]).api, testRun: vi.fn(), canTestRun: true, runError: null, runId: "exec-1", ...overrides };
  const onChange = vi.fn();
  render(
    <NodeSettings def={DEF} type={codeType} problems={problems} takenIds={[]} readOnly={false} onChange={onChange} onRename={() => undefined} onDelete={() => undefined} tools={tools} />,
  );
  // The editor is loaded lazily: wait for it (its first import can take seconds on a busy
  // machine, past findBy's default of 1 s).
  await screen.findByRole("textbox", { name: "source (Python)" }, { timeout: 15_000 });
  return { tools, onChange };
}

/** The editor's lines marked as errors: their 1-based numbers as the API gave them. */
function markedLines(): string[] {
  return [...document.querySelectorAll(".cm-error-line")].map((l) => l.getAttribute("data-error-line")!);
}

describe("the code node's source editor", () => {
  // The editor's first import (CodeMirror and the Python grammar) can take many seconds on a
  // busy machine: done once here under a limit of its own, so that a test's default timeout
  // covers what the test does, not the first import.
  beforeAll(async () => {
    await import("./PythonEditor");
  }, 120_000);

  it("shows the source in a Python editor with highlighting", async () => {
    await settings();
    const content = screen.getByRole("textbox", { name: "source (Python)" });
    expect(content.textContent).toContain("def helper(x):");
    // The Python grammar highlighted the keyword (a styled span of its own).
    const def = [...content.querySelectorAll("span")].find((s) => s.textContent === "def");
    expect(def?.className).toMatch(/\S/);
    // The first test pays for CodeMirror's first import, which settings() waits up to 15 s for.
  }, 20_000);

  it("marks the line a save's 422 names", async () => {
    await settings({}, [{ field: "parameters.source", msg: "node 'score': Value error, line 2, column 12: invalid syntax" }]);
    expect(markedLines()).toEqual(["2"]);
    const line = document.querySelector(".cm-error-line")!;
    expect(line.textContent).toBe("    return 1 / 0");
    expect(line.getAttribute("title")).toContain("invalid syntax");
  });

  it("marks the line a run's CodeError failed on, and says it", async () => {
    const stack = 'Traceback (most recent call last):\n  File "<code>", line 5, in main\n  File "<code>", line 2, in helper\nZeroDivisionError: division by zero\n';
    await settings({ runError: { type: "CodeError", message: "ZeroDivisionError: division by zero (line 2)", stack } });
    await waitFor(() => expect(markedLines()).toEqual(["2"]));
    expect(screen.getByRole("alert").textContent).toContain("Last run: ZeroDivisionError: division by zero (line 2)");
  });

  it("sends edits to the node, and drops a run's mark once the code changed", async () => {
    const runError = { type: "CodeError", message: "ZeroDivisionError: division by zero (line 2)", stack: 'File "<code>", line 2, in helper' };
    const { onChange } = await settings({ runError });
    await waitFor(() => expect(markedLines()).toEqual(["2"]));
    const view = EditorView.findFromDOM(document.querySelector(".cm-editor") as HTMLElement)!;
    act(() => view.dispatch({ changes: { from: 0, insert: "# scores\n" } }));
    expect(onChange).toHaveBeenLastCalledWith({ ...DEF, parameters: { source: `# scores\n${SOURCE}` } });
    expect(markedLines()).toEqual([]);
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("tests the node with its last input", async () => {
    const { tools } = await settings();
    fireEvent.click(screen.getByRole("button", { name: "▶ Test with the last input" }));
    expect(tools.testRun).toHaveBeenCalledTimes(1);
  });

  it("cannot test while a run is going on", async () => {
    await settings({ canTestRun: false });
    expect(screen.getByRole("button", { name: "▶ Test with the last input" })).toHaveProperty("disabled", true);
  });
});
