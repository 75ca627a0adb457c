import { describe, expect, it } from "vitest";
import { freeOutputPort, initialParameters, itemsOnPort, mapIssues, newNodeId, outputPorts, toCanvas, toDefinition } from "./graph";
import type { NodeType, WorkflowDef } from "./types";

const def: WorkflowDef = {
  name: "w",
  nodes: [
    { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
    { id: "big", type: "if", parameters: { condition: "{{ true }}" } },
    { id: "done", type: "noop", on_error: "continue" },
  ],
  connections: [
    { from: "start", to: "big" },
    { from: "big", output: "true", to: "done" },
  ],
};

describe("toCanvas / toDefinition", () => {
  it("round-trips a definition, with ports as handles and positions filled in", () => {
    const { nodes, edges } = toCanvas(def);
    expect(edges.map((e) => [e.source, e.sourceHandle, e.target, e.targetHandle])).toEqual([
      ["start", "main", "big", "main"],
      ["big", "true", "done", "main"],
    ]);
    // Nodes saved without a position are laid out by depth from the trigger.
    expect(nodes[1].position.x).toBeGreaterThan(nodes[0].position.x);
    expect(nodes[2].position.x).toBeGreaterThan(nodes[1].position.x);
    const back = toDefinition("w", nodes, edges);
    expect(back.connections).toEqual(def.connections);
    expect(back.nodes.map(({ position: _p, ...n }) => n)).toEqual(def.nodes.map(({ position: _p, ...n }) => n));
    expect(back.nodes[0].position).toEqual({ x: 0, y: 0 });
  });

  it("keeps the workflow's settings, max_concurrent and timeout_ms, unchanged", () => {
    const withSettings: WorkflowDef = { ...def, settings: { timeout_ms: 60000, max_concurrent: 2 } };
    // What the editor does: load onto the canvas, then save with the settings it loaded.
    const { nodes, edges } = toCanvas(withSettings);
    const back = toDefinition(withSettings.name, nodes, edges, withSettings.settings);
    expect(back.settings).toEqual({ timeout_ms: 60000, max_concurrent: 2 });
    expect(JSON.parse(JSON.stringify(back)).settings).toEqual({ timeout_ms: 60000, max_concurrent: 2 });
    // No settings (no limit): none are sent.
    expect("settings" in toDefinition("w", nodes, edges, undefined)).toBe(false);
    expect("settings" in toDefinition("w", nodes, edges, {})).toBe(false);
  });
});

describe("mapIssues", () => {
  it("puts each 422 item on the node or connection its loc names, the rest in general", () => {
    const issues = mapIssues(def, [
      { loc: ["body", "nodes", 1, "parameters", "condition"], msg: "bad expression" },
      { loc: ["body", "connections", 1, "to"], msg: "unknown node" },
      { loc: ["body", "connections"], msg: "cycle: a -> b -> a" },
      { loc: ["body", "name"], msg: "too long" },
    ]);
    expect(issues.nodes).toEqual({ big: [{ field: "parameters.condition", msg: "bad expression" }] });
    expect(issues.edges).toEqual({ "big:true->done:main": ["unknown node"] });
    expect(issues.general).toEqual(["connections: cycle: a -> b -> a", "name: too long"]);
  });
});

describe("ports and ids", () => {
  const ifType: NodeType = { type: "if", display_name: "If", category: "flow", parameters_schema: {}, outputs: ["true", "false"] };
  const switchType: NodeType = { type: "switch", display_name: "Switch", category: "flow", parameters_schema: {}, outputs: [] };
  it("offers the type's outputs, a switch's cases, and error for error_output", () => {
    expect(outputPorts({ id: "a", type: "if" }, ifType)).toEqual(["true", "false"]);
    expect(outputPorts({ id: "a", type: "if", on_error: "error_output" }, ifType)).toEqual(["true", "false", "error"]);
    expect(
      outputPorts({ id: "s", type: "switch", parameters: { cases: [{ output: "a", condition: "x" }, { output: "b", condition: "y" }], default_output: "a" } }, switchType),
    ).toEqual(["a", "b"]);
  });
  it("names a new node after its type, numbered when taken", () => {
    expect(newNodeId("http_request", [])).toBe("http_request");
    expect(newNodeId("set", ["set", "set_2"])).toBe("set_3");
    expect(newNodeId("9lives", [])).toBe("n_9lives");
  });
});

describe("initialParameters", () => {
  it("starts a code node with a source that defines main", () => {
    const code: NodeType = { type: "code", display_name: "Code", category: "action", parameters_schema: { type: "object", required: ["source"], properties: {} }, outputs: ["main"] };
    expect(initialParameters(code)?.source).toMatch(/^def main\(items, ctx\):\n/);
  });
});

describe("freeOutputPort", () => {
  const ports = ["true", "false"];
  it("wires a second child of an if to false, where true is taken", () => {
    expect(freeOutputPort(ports, "check", [{ source: "check", sourceHandle: "true" }])).toBe("false");
  });
  it("takes the first port when none or all are taken", () => {
    expect(freeOutputPort(ports, "check", [{ source: "other", sourceHandle: "true" }])).toBe("true");
    expect(
      freeOutputPort(ports, "check", [
        { source: "check", sourceHandle: "true" },
        { source: "check", sourceHandle: "false" },
      ]),
    ).toBe("true");
  });
});

describe("itemsOnPort", () => {
  it("counts the items a node sent on a port, and knows none before a run", () => {
    expect(itemsOnPort({ true: [{}, {}], false: [] }, "true")).toBe(2);
    expect(itemsOnPort({ true: [{}, {}], false: [] }, "false")).toBe(0);
    expect(itemsOnPort(null, "main")).toBeNull();
    expect(itemsOnPort({ main: { ref: "offloaded" } }, "main")).toBeNull();
  });
});
