import { render, screen, waitFor } from "@testing-library/react";
import { useState } from "react";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ApiError, type Api } from "../api";
import type { ExpressionData } from "../expressions";
import { expressionTarget } from "../expressionTarget";
import { ExpressionField } from "./ExpressionField";

const DATA: ExpressionData = { item: { total: 120 }, nodeIds: ["start"], nodes: { start: { main: [{ total: 120 }] } } };

function field(previewExpression: Api["previewExpression"], initial: string) {
  const api = { previewExpression: vi.fn(previewExpression) } as unknown as Api;
  const changes: (string | undefined)[] = [];
  function Host() {
    const [value, setValue] = useState(initial);
    return (
      <ExpressionField
        id="f"
        label="Condition"
        value={value}
        onChange={(v) => {
          changes.push(v);
          setValue(v ?? "");
        }}
        invalid={false}
        readOnly={false}
        tools={{ api, data: DATA, execution: { id: "e1", trigger: "start" } }}
      />
    );
  }
  render(<Host />);
  return { api, changes };
}

describe("the expression field", () => {
  // The editor's first import (CodeMirror) can take many seconds on a busy machine: done once
  // here under a limit of its own, so that a test's default timeout covers what the test does.
  beforeAll(async () => {
    await import("./ExpressionEditor");
  }, 120_000);

  it("previews the value with the last run's item, by the API", async () => {
    const { api } = field(async () => ({ value: true }), "{{ item.total > 100 }}");
    await screen.findByText("true", {}, { timeout: 15_000 });
    expect(api.previewExpression).toHaveBeenCalledTimes(1);
    expect(api.previewExpression).toHaveBeenCalledWith("{{ item.total > 100 }}", {
      item: { total: 120 },
      nodes: DATA.nodes,
      execution: { id: "e1", trigger: "start" },
    });
    // Highlighted (once the editor's chunk is loaded): the scope name and the number have
    // marks of their own.
    await waitFor(() => expect(document.querySelector(".cm-expr-name")?.textContent).toBe("item"), { timeout: 15_000 });
    expect(document.querySelector(".cm-expr-number")?.textContent).toBe("100");
  }, 20_000);

  it("marks the characters the API's 422 names and says the error", async () => {
    const error = new ApiError(422, "bad", [
      { loc: ["body", "template"], msg: "unknown name 'secret'", type: "expression", ctx: { start: 16, end: 17 } },
    ]);
    field(async () => Promise.reject(error), "{{ item.total + secret }}");
    await screen.findByText("⚠ unknown name 'secret'", {}, { timeout: 15_000 });
    await waitFor(() => expect(document.querySelector(".cm-expr-error")?.textContent).toBe("s"));
  }, 20_000);

  it("stays a plain input without {{, and inserts a picked field as an expression", async () => {
    const { api, changes } = field(async () => ({ value: 120 }), "Total: ");
    const input = screen.getByRole("textbox", { name: "" }) as HTMLInputElement;
    expect(input.tagName).toBe("INPUT");
    input.focus();
    expect(expressionTarget()?.label).toBe("Condition");
    expressionTarget()!.insert("item.total");
    expect(changes).toEqual(["Total: {{ item.total }}"]);
    await screen.findByText("120", {}, { timeout: 15_000 });
    expect(api.previewExpression).toHaveBeenCalledWith("Total: {{ item.total }}", expect.anything());
  }, 20_000);
});
