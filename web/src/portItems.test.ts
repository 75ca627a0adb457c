import { describe, expect, it } from "vitest";
import { holdsReference, parsePortItems } from "./portItems";

describe("parsePortItems", () => {
  it("accepts {port: [objects]}", () => {
    expect(parsePortItems('{"main": [{"a": 1}], "error": []}')).toEqual({ main: [{ a: 1 }], error: [] });
  });
  it.each([
    ["[1]", 'expected {"port": [items]}'],
    ['{"main": {}}', "port “main” must hold a list of items"],
    ['{"main": [{}, 2]}', "item 1 of port “main” must be a JSON object"],
  ])("refuses %s saying what is wrong", (text, message) => {
    expect(() => parsePortItems(text)).toThrow(message);
  });
  it("refuses text that is not JSON", () => {
    expect(() => parsePortItems("{main")).toThrow(SyntaxError);
  });
});

describe("holdsReference", () => {
  it("spots an item stored by reference", () => {
    expect(holdsReference({ main: [{ $nodedrop_ref: { bucket: "b", name: "n", count: 1, bytes: 9 } }] })).toBe(true);
    expect(holdsReference({ main: [{ a: 1 }] })).toBe(false);
  });
});
