import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import type { JsonSchema } from "../types";
import { fieldKind, ParamForm } from "./ParamForm";

const httpSchema: JsonSchema = {
  type: "object",
  required: ["url"],
  properties: {
    method: { enum: ["GET", "POST"], default: "GET", type: "string", title: "Method" },
    url: { type: "string", title: "Url" },
    headers: { type: "object", title: "Headers" },
    body: { anyOf: [{ type: "string" }, { type: "null" }], title: "Body" },
  },
};

describe("fieldKind", () => {
  it("chooses an input per schema", () => {
    expect(fieldKind({ type: "integer" })).toBe("integer");
    expect(fieldKind({ anyOf: [{ type: "string" }, { type: "boolean" }] })).toBe("text");
    expect(fieldKind({ anyOf: [{ type: "string" }, { type: "null" }] })).toBe("text");
    expect(fieldKind({ enum: ["a"] })).toBe("select");
    expect(fieldKind({ type: "object" })).toBe("json");
    expect(fieldKind({ type: "array", items: {} })).toBe("json");
    expect(fieldKind({ title: "Json" })).toBe("json");
  });
});

describe("ParamForm", () => {
  it("edits parameters and drops an emptied optional field", () => {
    const onChange = vi.fn();
    render(<ParamForm schema={httpSchema} values={{ url: "https://a", body: "x" }} onChange={onChange} problems={[]} idPrefix="n" />);
    fireEvent.change(screen.getByLabelText(/^URL/), { target: { value: "https://b" } });
    expect(onChange).toHaveBeenLastCalledWith({ url: "https://b", body: "x" });
    fireEvent.change(screen.getByLabelText(/^Body/), { target: { value: "" } });
    expect(onChange).toHaveBeenLastCalledWith({ url: "https://a" });
    fireEvent.change(screen.getByLabelText(/^Method/), { target: { value: "POST" } });
    expect(onChange).toHaveBeenLastCalledWith({ url: "https://a", body: "x", method: "POST" });
  });

  it("parses the JSON editor on blur and says when it is not JSON", () => {
    const onChange = vi.fn();
    render(<ParamForm schema={httpSchema} values={{ url: "u" }} onChange={onChange} problems={[]} idPrefix="n" />);
    const headers = screen.getByLabelText(/^Headers/);
    fireEvent.change(headers, { target: { value: '{"X-A": "1"}' } });
    fireEvent.blur(headers);
    expect(onChange).toHaveBeenLastCalledWith({ url: "u", headers: { "X-A": "1" } });
    onChange.mockClear();
    fireEvent.change(headers, { target: { value: "{nope" } });
    fireEvent.blur(headers);
    expect(onChange).not.toHaveBeenCalled();
    expect(screen.getByText(/Not valid JSON/)).toBeTruthy();
  });

  it("shows the API's problem under the field it names and marks it invalid", () => {
    render(
      <ParamForm schema={httpSchema} values={{}} onChange={() => {}} problems={[{ field: "parameters.url", msg: "Field required" }]} idPrefix="n" />,
    );
    const url = screen.getByLabelText(/^URL/);
    expect(url.getAttribute("aria-invalid")).toBe("true");
    const described = document.getElementById(url.getAttribute("aria-describedby")!.split(" ").pop()!);
    expect(described?.textContent).toContain("Field required");
    expect(screen.getByLabelText(/^Method/).getAttribute("aria-invalid")).toBeNull();
  });
});
