import { describe, expect, it } from "vitest";
import { copyFragment, parseFragment, pasteFragment, PASTE_OFFSET } from "./clipboard";
import type { Fragment } from "./clipboard";

const draft: Fragment = {
  nodes: [
    { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
    { id: "fetch", type: "http_request", parameters: { url: "https://example.org" }, position: { x: 300, y: 0 } },
    { id: "save", type: "noop", position: { x: 600, y: 0 } },
  ],
  connections: [
    { from: "start", to: "fetch" },
    { from: "fetch", to: "save", output: "main" },
  ],
};

describe("copyFragment", () => {
  it("keeps the chosen nodes and only the connections between them", () => {
    expect(copyFragment(draft, ["fetch", "save"])).toEqual({
      nodes: [draft.nodes[1], draft.nodes[2]],
      connections: [{ from: "fetch", to: "save", output: "main" }],
    });
  });
});

describe("pasteFragment", () => {
  it("gives clashing ids fresh ones and remaps the connections to them", () => {
    const pasted = pasteFragment(draft.nodes, copyFragment(draft, ["fetch", "save"]));
    expect(pasted.nodes.map((n) => n.id)).toEqual(["fetch_2", "save_2"]);
    expect(pasted.connections).toEqual([{ from: "fetch_2", to: "save_2", output: "main" }]);
    expect(pasted.nodes[0].parameters).toEqual({ url: "https://example.org" });
  });

  it("keeps free ids and drops connections to nodes not pasted", () => {
    const pasted = pasteFragment(draft.nodes, {
      nodes: [{ id: "other", type: "noop" }],
      connections: [{ from: "start", to: "other" }],
    });
    expect(pasted.nodes.map((n) => n.id)).toEqual(["other"]);
    expect(pasted.connections).toEqual([]);
  });

  it("moves the pasted nodes off the ones they would cover, all by the same offset", () => {
    const pasted = pasteFragment(draft.nodes, copyFragment(draft, ["start", "fetch"]));
    expect(pasted.nodes.map((n) => n.position)).toEqual([
      { x: PASTE_OFFSET, y: PASTE_OFFSET },
      { x: 300 + PASTE_OFFSET, y: PASTE_OFFSET },
    ]);
    const again = pasteFragment([...draft.nodes, ...pasted.nodes], copyFragment(draft, ["start", "fetch"]));
    expect(again.nodes[0].position).toEqual({ x: 2 * PASTE_OFFSET, y: 2 * PASTE_OFFSET });
    expect(again.nodes.map((n) => n.id)).toEqual(["start_3", "fetch_3"]);
  });

  it("lays out nodes that have no position", () => {
    const pasted = pasteFragment([], { nodes: [{ id: "a", type: "manual_trigger" }, { id: "b", type: "noop" }], connections: [{ from: "a", to: "b" }] });
    expect(pasted.nodes.every((n) => n.position)).toBe(true);
    expect(pasted.nodes[1].position!.x).toBeGreaterThan(pasted.nodes[0].position!.x);
  });

  it("pastes a node whose id repeats in the JSON once", () => {
    const pasted = pasteFragment([], { nodes: [{ id: "a", type: "noop" }, { id: "a", type: "wait" }], connections: [] });
    expect(pasted.nodes).toHaveLength(1);
    expect(pasted.nodes[0].type).toBe("noop");
  });
});

describe("parseFragment", () => {
  it("reads a definition, a workflow from the API and a one-workflow export", () => {
    const def = { name: "x", nodes: [{ id: "a", type: "noop" }], connections: [] };
    expect(parseFragment(JSON.stringify(def))).toEqual({ fragment: { nodes: def.nodes, connections: [] } });
    expect(parseFragment(JSON.stringify({ ...def, id: "wf1", version: 3 }))).toEqual({ fragment: { nodes: def.nodes, connections: [] } });
    const exported = {
      format: "nodedrop.workflows",
      format_version: 1,
      workflows: [{ id: "wf1", name: "x", versions: [{ version: 1, definition: { name: "old", nodes: [], connections: [] } }, { version: 2, definition: def }] }],
    };
    expect(parseFragment(JSON.stringify(exported))).toEqual({ fragment: { nodes: def.nodes, connections: [] } });
  });

  it("ignores text that is no workflow JSON", () => {
    expect(parseFragment("hello")).toBeNull();
    expect(parseFragment("{not json")).toBeNull();
    expect(parseFragment('{"a": 1}')).toBeNull();
  });

  it("says what is wrong with workflow JSON it cannot use", () => {
    expect(parseFragment('{"nodes": [{"id": "a"}]}')).toEqual({ error: 'Node 0 of the pasted JSON needs an "id" and a "type".' });
    expect(parseFragment('{"nodes": [], "connections": [{"from": "a"}]}')).toEqual({ error: 'Connection 0 of the pasted JSON needs a "from" and a "to".' });
    expect(parseFragment('{"format": "nodedrop.workflows", "workflows": []}')).toEqual({
      error: "The export holds 0 workflows; paste one workflow's definition.",
    });
  });
});
