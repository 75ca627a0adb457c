import { describe, expect, it } from "vitest";
import { fieldLabel } from "./labels";

describe("fieldLabel", () => {
  it("makes a readable label of a field whose title pydantic generated from its name", () => {
    expect(fieldLabel("url", "Url")).toBe("URL");
    expect(fieldLabel("callback_url", "Callback Url")).toBe("Callback URL");
    expect(fieldLabel("error_type", undefined)).toBe("Error type");
    expect(fieldLabel("json_body", "Json Body")).toBe("JSON body");
    expect(fieldLabel("record_id", undefined)).toBe("Record ID");
  });
  it("keeps a title the schema chose", () => {
    expect(fieldLabel("url", "Callback address")).toBe("Callback address");
    expect(fieldLabel("ms", "Wait (milliseconds)")).toBe("Wait (milliseconds)");
    expect(fieldLabel("headers", "Headers")).toBe("Headers");
  });
});
