import { describe, expect, it } from "vitest";
import { compareExecutions, diffOutputs, fieldChanges, sameJson, summary } from "./compareRuns";
import type { Execution, NodeExecution } from "./types";

function node(over: Partial<NodeExecution>): NodeExecution {
  return { status: "succeeded", attempts: 1, started_at: null, finished_at: null, output: null, error: null, skip_reason: null, ...over };
}

function execution(id: string, nodes: Record<string, NodeExecution>): Execution {
  return { id, workflow_id: "w", workflow_version: 1, mode: "trigger", status: "succeeded", nodes } as unknown as Execution;
}

describe("output diff", () => {
  it("counts items added, removed and changed by position, port by port", () => {
    const diff = diffOutputs(
      { main: [{ a: 1 }, { a: 2 }, { a: 3 }], other: [{ x: 1 }] },
      { main: [{ a: 1 }, { a: 20 }], other: [{ x: 1 }, { x: 2 }] },
    );
    expect([diff.added, diff.removed, diff.changed, diff.unchanged]).toEqual([1, 1, 1, 2]);
    expect(diff.items.map((i) => [i.port, i.index, i.change])).toEqual([
      ["main", 1, "changed"],
      ["main", 2, "removed"],
      ["other", 1, "added"],
    ]);
    expect(summary(diff)).toBe("1 added, 1 removed, 1 changed");
  });

  it("names the fields of a changed item", () => {
    expect(fieldChanges({ a: 1, b: { c: [1] }, gone: true }, { a: 1, b: { c: [2] }, new: "x" })).toEqual([
      { field: "b", change: "changed", before: { c: [1] }, after: { c: [2] } },
      { field: "gone", change: "removed", before: true },
      { field: "new", change: "added", after: "x" },
    ]);
  });

  it("compares JSON whatever the key order, and tells arrays from objects", () => {
    expect(sameJson({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(sameJson([1, 2], { 0: 1, 1: 2 })).toBe(false);
    expect(sameJson({ a: null }, {})).toBe(false);
    expect(sameJson(1, "1")).toBe(false);
  });

  it("a missing output is no items, and one held elsewhere is not compared", () => {
    expect(summary(diffOutputs(null, null))).toBe("same output");
    expect(diffOutputs(null, { main: [{ a: 1 }] }).added).toBe(1);
    const stored = diffOutputs({ main: [{ $nodedrop_ref: { bucket: "b", name: "n", count: 1, bytes: 1 } }] }, { main: [] });
    expect(stored.stored).toBe(true);
    expect(summary(stored)).toMatch(/not compared/);
  });
});

describe("comparing two executions", () => {
  it("lists every node of either, with each run's status and duration", () => {
    const first = execution("e1", {
      start: node({ started_at: "2026-01-01T00:00:00.000Z", finished_at: "2026-01-01T00:00:00.250Z", output: { main: [{}] } }),
      fetch: node({ status: "failed", started_at: "2026-01-01T00:00:01Z", finished_at: "2026-01-01T00:00:03Z" }),
    });
    const second = execution("e2", {
      start: node({ started_at: "2026-01-01T00:01:00.000Z", finished_at: "2026-01-01T00:01:00.100Z", output: { main: [{}] } }),
      fetch: node({ output: { main: [{ ok: true }] } }),
      extra: node({ status: "skipped" }),
    });
    const rows = compareExecutions(first, second);
    expect(rows.map((r) => r.node)).toEqual(["start", "fetch", "extra"]);
    expect([rows[0].firstMs, rows[0].secondMs, rows[0].sameStatus]).toEqual([250, 100, true]);
    expect([rows[1].first?.status, rows[1].second?.status, rows[1].sameStatus]).toEqual(["failed", "succeeded", false]);
    expect(rows[1].output.added).toBe(1);
    expect([rows[2].first, rows[2].second?.status]).toEqual([null, "skipped"]);
  });
});
