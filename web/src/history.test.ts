import { describe, expect, it } from "vitest";
import { canRedo, canUndo, historyKey, historyReducer, startHistory, type History } from "./history";

const record = (h: History<number>, n: number, key?: string) => historyReducer(h, { type: "record", present: n, key });

describe("historyReducer", () => {
  it("undoes and redoes edits in order", () => {
    let h = record(record(startHistory(0), 1), 2);
    h = historyReducer(h, { type: "undo" });
    expect(h.present).toBe(1);
    h = historyReducer(h, { type: "undo" });
    expect(h.present).toBe(0);
    expect(canUndo(h)).toBe(false);
    expect(historyReducer(h, { type: "undo" })).toBe(h);
    h = historyReducer(h, { type: "redo" });
    expect(h.present).toBe(1);
    h = historyReducer(h, { type: "redo" });
    expect(h.present).toBe(2);
    expect(canRedo(h)).toBe(false);
  });

  it("drops the redo steps when a new edit is made after an undo", () => {
    let h = record(record(startHistory(0), 1), 2);
    h = historyReducer(h, { type: "undo" });
    h = record(h, 7);
    expect(canRedo(h)).toBe(false);
    expect(h.past).toEqual([0, 1]);
  });

  it("keeps at most the limit of steps, forgetting the oldest", () => {
    let h = startHistory(0);
    for (let i = 1; i <= 5; i++) h = historyReducer(h, { type: "record", present: i }, 3);
    expect(h.past).toEqual([2, 3, 4]);
  });

  it("merges edits with the same key into one step", () => {
    let h = record(startHistory(0), 1, "params:a");
    h = record(h, 2, "params:a");
    h = record(h, 3, "params:b");
    expect(h.past).toEqual([0, 2]);
    h = historyReducer(h, { type: "undo" });
    h = historyReducer(h, { type: "undo" });
    expect(h.present).toBe(0);
  });

  it("does not merge into a step that was undone", () => {
    let h = record(startHistory(0), 1, "params:a");
    h = historyReducer(h, { type: "undo" });
    h = record(h, 5, "params:a");
    expect(h.past).toEqual([0]);
    expect(h.present).toBe(5);
  });

  it("reset forgets everything", () => {
    const h = historyReducer(record(startHistory(0), 1), { type: "reset", present: 9 });
    expect(h).toEqual(startHistory(9));
  });
});

describe("historyKey", () => {
  const k = (key: string, mods: Partial<{ ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean }> = {}) =>
    historyKey({ key, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });
  it("maps Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y and Cmd+Z", () => {
    expect(k("z", { ctrlKey: true })).toBe("undo");
    expect(k("Z", { ctrlKey: true, shiftKey: true })).toBe("redo");
    expect(k("y", { ctrlKey: true })).toBe("redo");
    expect(k("z", { metaKey: true })).toBe("undo");
    expect(k("z")).toBeNull();
    expect(k("z", { ctrlKey: true, altKey: true })).toBeNull();
  });
});
