import { describe, expect, it } from "vitest";
import { fieldLabel } from "./labels";

describe("fieldLabel", () => {
  it("replaces the titles pydantic generates from a field's name", () => {
    expect(fieldLabel("url", "Url")).toBe("URL");
    expect(fieldLabel("ms", "Ms")).toBe("Wait (milliseconds)");
    expect(fieldLabel("default_output", "Default Output")).toBe("Default output port");
    expect(fieldLabel("url", undefined)).toBe("URL");
  });
  it("keeps a title the schema chose, and a generated one that reads well", () => {
    expect(fieldLabel("url", "Callback address")).toBe("Callback address");
    expect(fieldLabel("headers", "Headers")).toBe("Headers");
    expect(fieldLabel("error_type", undefined)).toBe("Error Type");
  });
});
