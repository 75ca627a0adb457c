import { useState } from "react";
import type { NodeType } from "../types";

export const PALETTE_MIME = "application/x-nodedrop-type";
const GROUPS: [NodeType["category"], string][] = [
  ["trigger", "Triggers"],
  ["action", "Actions"],
  ["flow", "Flow"],
];

export function Palette({
  nodeTypes,
  onAdd,
  hasSelection,
}: {
  nodeTypes: NodeType[];
  onAdd: (type: NodeType) => void;
  hasSelection: boolean;
}) {
  const [search, setSearch] = useState("");
  const shown = nodeTypes.filter((t) => matches(t, search));
  return (
    <nav className="palette" aria-label="Node palette">
      <h2>Add a node</h2>
      <input
        type="search"
        className="palette-search"
        aria-label="Search node types"
        placeholder="Search…"
        value={search}
        onChange={(e) => setSearch(e.target.value)}
        onKeyDown={(e) => {
          // Enter adds the first match: type a few letters, Enter, and go on typing.
          if (e.key === "Enter" && search.trim() && shown.length) {
            e.preventDefault();
            onAdd(shown[0]);
            setSearch("");
          } else if (e.key === "Escape") setSearch("");
        }}
      />
      <p className="muted small">{hasSelection ? "Click: adds after the selected node." : "Click to add, or drag onto the canvas."}</p>
      {shown.length === 0 && <p className="muted small" role="status">No node type matches “{search.trim()}”.</p>}
      {GROUPS.map(([category, title]) => {
        const group = shown.filter((t) => t.category === category);
        if (!group.length) return null;
        return (
          <section key={category}>
            <h3>{title}</h3>
            <ul>
              {group.map((t) => (
                <li key={t.type}>
                  <button
                    type="button"
                    className={`palette-item cat-${category}`}
                    draggable
                    onDragStart={(e) => {
                      e.dataTransfer.setData(PALETTE_MIME, t.type);
                      e.dataTransfer.effectAllowed = "move";
                    }}
                    onClick={() => onAdd(t)}
                    title={t.description || t.type}
                  >
                    {/* The name read out starts with what is shown ("Add" unseen before it), so
                        that speaking the visible text activates it. */}
                    <span className="sr-only">Add </span>
                    <span className="palette-name">{t.display_name}</span>
                    <span className="palette-type">{t.type}</span>
                  </button>
                </li>
              ))}
            </ul>
          </section>
        );
      })}
    </nav>
  );
}

/** Whether a node type matches what was typed: every word, in its name, type or description. */
function matches(type: NodeType, search: string): boolean {
  const text = `${type.display_name} ${type.type} ${type.description ?? ""}`.toLowerCase();
  return search
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((word) => text.includes(word));
}
