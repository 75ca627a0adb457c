import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { PinnedOutputEditor } from "./PinnedOutputEditor";

const field = () => screen.getByLabelText(/^Pinned output \(JSON/) as HTMLTextAreaElement;

describe("PinnedOutputEditor", () => {
  it("applies valid JSON and refuses the rest under the field", () => {
    const onChange = vi.fn();
    render(<PinnedOutputEditor pinned={{ main: [{ a: 1 }] }} readOnly={false} onChange={onChange} />);
    expect(JSON.parse(field().value)).toEqual({ main: [{ a: 1 }] });

    fireEvent.change(field(), { target: { value: '{"main": "x"}' } });
    fireEvent.click(screen.getByRole("button", { name: "Apply pinned output" }));
    expect(screen.getByRole("alert").textContent).toBe("Not valid: port “main” must hold a list of items");
    expect(field().getAttribute("aria-invalid")).toBe("true");
    expect(onChange).not.toHaveBeenCalled();

    fireEvent.change(field(), { target: { value: '{"main": [{"b": 2}]}' } });
    fireEvent.click(screen.getByRole("button", { name: "Apply pinned output" }));
    expect(onChange).toHaveBeenCalledWith({ main: [{ b: 2 }] });
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("unpins with null", () => {
    const onChange = vi.fn();
    render(<PinnedOutputEditor pinned={{ main: [] }} readOnly={false} onChange={onChange} />);
    fireEvent.click(screen.getByRole("button", { name: "Unpin" }));
    expect(onChange).toHaveBeenCalledWith(null);
  });

  it("offers no change in a read-only view", () => {
    render(<PinnedOutputEditor pinned={{ main: [] }} readOnly onChange={vi.fn()} />);
    expect(field().disabled).toBe(true);
    expect(screen.queryByRole("button")).toBeNull();
  });
});
