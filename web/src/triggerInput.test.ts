import { describe, expect, it } from "vitest";
import { inputIssueText, isInputIssue, parseTriggerItems } from "./triggerInput";

describe("parseTriggerItems", () => {
  it("reads a list of objects", () => {
    expect(parseTriggerItems('[{"a": 1}, {}]')).toEqual([{ a: 1 }, {}]);
    expect(parseTriggerItems("[]")).toEqual([]);
  });
  it("says what is wrong", () => {
    expect(() => parseTriggerItems("{")).toThrow(/not JSON/);
    expect(() => parseTriggerItems('{"a": 1}')).toThrow("expected a list of items");
    expect(() => parseTriggerItems('[{"a": 1}, 2]')).toThrow("item 2 must be a JSON object");
    expect(() => parseTriggerItems("[[]]")).toThrow("item 1 must be a JSON object");
  });
});

describe("the API's problems with the input", () => {
  it("names the item (counted from 1) and the key", () => {
    expect(inputIssueText({ loc: ["body", "input", 0, "$nodedrop_ref"], msg: "the key is reserved" })).toBe(
      "item 1, key “$nodedrop_ref”: the key is reserved",
    );
    expect(inputIssueText({ loc: ["body", "input"], msg: "too many" })).toBe("too many");
  });
  it("tells input problems from the rest", () => {
    expect(isInputIssue({ loc: ["body", "input", 2], msg: "" })).toBe(true);
    expect(isInputIssue({ loc: ["body", "nodes", 0, "parameters"], msg: "" })).toBe(false);
  });
});
