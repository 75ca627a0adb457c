import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { ContextMenu } from "./ContextMenu";

describe("ContextMenu", () => {
  it("is operable with the keyboard: focus, arrows, Enter, Escape", () => {
    const run = vi.fn();
    const remove = vi.fn();
    const onClose = vi.fn();
    const opener = document.createElement("button");
    document.body.appendChild(opener);
    opener.focus();
    render(
      <ContextMenu
        x={10}
        y={10}
        label="Node a"
        onClose={onClose}
        items={[
          { label: "Execute node", onSelect: run },
          { label: "Disabled", onSelect: () => {}, disabled: true },
          { label: "Delete node", onSelect: remove },
        ]}
      />,
    );
    const menu = screen.getByRole("menu", { name: "Node a" });
    expect(document.activeElement?.textContent).toBe("Execute node");
    fireEvent.keyDown(menu, { key: "ArrowDown" }); // skips the disabled item
    expect(document.activeElement?.textContent).toBe("Delete node");
    fireEvent.keyDown(menu, { key: "ArrowDown" }); // wraps around
    expect(document.activeElement?.textContent).toBe("Execute node");
    fireEvent.click(document.activeElement!);
    expect(run).toHaveBeenCalledOnce();
    fireEvent.keyDown(menu, { key: "Escape" });
    expect(onClose).toHaveBeenCalled();
    expect(document.activeElement).toBe(opener);
    expect(remove).not.toHaveBeenCalled();
  });
});
