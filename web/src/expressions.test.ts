import { describe, expect, it } from "vitest";
import {
  completionsAt,
  expressionData,
  expressionSegments,
  inputFromParents,
  insertExpression,
  itemFieldExpression,
  nodeFieldExpression,
  templateTokens,
  type ExpressionData,
} from "./expressions";

const DATA: ExpressionData = {
  item: { total: 120, "first name": "Ann", id: 7 },
  nodeIds: ["start", "fetch", "tag"],
  nodes: { fetch: { main: [{ status: 200, body: "x" }, { status: 404 }] } },
};

function labels(text: string, pos = text.length) {
  return completionsAt(text, pos, DATA)?.options.map((o) => o.label);
}

describe("expressionSegments", () => {
  it("finds each expression, a `}}` inside a string included", () => {
    const text = 'a {{ item.x }} b {{ "}}" + y }} c {{ open';
    const parts = expressionSegments(text).map((s) => [text.slice(s.from, s.to), s.closed]);
    expect(parts).toEqual([
      [" item.x ", true],
      [' "}}" + y ', true],
      [" open", false],
    ]);
  });
  it("finds none in plain text", () => {
    expect(expressionSegments("https://example.org/{id}")).toEqual([]);
  });
});

describe("templateTokens", () => {
  it("names strings, numbers, keywords, functions, properties and braces", () => {
    const text = 'x {{ len(item.tags) > 2 and item.name == "a" }}';
    const kinds = templateTokens(text).map((t) => [text.slice(t.from, t.to), t.kind]);
    expect(kinds).toEqual([
      ["{{", "brace"],
      ["len", "function"],
      ["(", "operator"],
      ["item", "name"],
      [".", "operator"],
      ["tags", "property"],
      [")", "operator"],
      [">", "operator"],
      ["2", "number"],
      ["and", "keyword"],
      ["item", "name"],
      [".", "operator"],
      ["name", "property"],
      ["==", "operator"],
      ['"a"', "string"],
      ["}}", "brace"],
    ]);
  });
  it("leaves the text around expressions alone", () => {
    expect(templateTokens("no expression here")).toEqual([]);
  });
});

describe("completionsAt", () => {
  it("offers the last run's item fields after item. and item[\"", () => {
    expect(labels("{{ item.")).toEqual(["total", "first name", "id"]);
    expect(labels('{{ item["fi')).toEqual(["total", "first name", "id"]);
    const result = completionsAt("{{ item.to }}", 10, DATA)!;
    expect(result.from).toBe(8);
    expect(result.options[0].detail).toBe("120");
  });
  it("offers the workflow's node ids after nodes[\" and nodes.", () => {
    expect(labels('{{ nodes["')).toEqual(["start", "fetch", "tag"]);
    expect(labels("{{ nodes.fe")).toEqual(["start", "fetch", "tag"]);
    expect(completionsAt('{{ nodes["fe', 11, DATA)!.from).toBe(10);
  });
  it("offers a node's ports, then its items' fields", () => {
    expect(labels('{{ nodes["fetch"].')).toEqual(["main"]);
    expect(labels('{{ nodes["fetch"].main[0].')).toEqual(["status", "body"]);
    expect(labels("{{ nodes.fetch.main[1].st")).toEqual(["status", "body"]);
    expect(labels('{{ nodes["tag"].main[0].')).toEqual([]);
  });
  it("offers scope names and functions for a bare word, nothing outside an expression", () => {
    expect(labels("{{ le")).toContain("len");
    expect(labels("{{ le")).toContain("item");
    expect(labels("{{ execution.")).toEqual(["id", "trigger"]);
    expect(completionsAt("item.", 5, DATA)).toBeNull();
  });
});

describe("inserting a field", () => {
  it("writes the access that reads the key", () => {
    expect(itemFieldExpression("total")).toBe("item.total");
    expect(itemFieldExpression("first name")).toBe('item["first name"]');
    expect(nodeFieldExpression("fetch", "main", "status")).toBe('nodes["fetch"].main[0].status');
    expect(nodeFieldExpression("if", "true", "2x")).toBe('nodes["if"].true[0]["2x"]');
  });
  it("wraps it in braces outside an expression, not inside one", () => {
    expect(insertExpression("Total: ", "item.total")).toEqual({ text: "Total: {{ item.total }}", cursor: 23 });
    expect(insertExpression("{{  }}", "item.total", 3)).toEqual({ text: "{{ item.total }}", cursor: 13 });
  });
});

describe("expressionData", () => {
  it("takes the first item of the main input and every output there is", () => {
    const data = expressionData(["a", "b"], { main: [{ x: 1 }, { x: 2 }] }, { a: { main: [{ y: 1 }] }, b: null });
    expect(data).toEqual({ item: { x: 1 }, nodeIds: ["a", "b"], nodes: { a: { main: [{ y: 1 }] } } });
    expect(expressionData([], null, {}).item).toBeNull();
  });
});

describe("inputFromParents", () => {
  it("gathers the parents' items per input port, in connection order", () => {
    const connections = [
      { from: "a", to: "m", input: "left" },
      { from: "b", to: "m", output: "true", input: "left" },
      { from: "b", to: "x" },
    ];
    const outputs = { a: { main: [{ n: 1 }] }, b: { true: [{ n: 2 }], false: [{ n: 3 }] } };
    expect(inputFromParents("m", connections, outputs)).toEqual({ left: [{ n: 1 }, { n: 2 }] });
    expect(inputFromParents("x", connections, outputs)).toBeNull();
  });
});
