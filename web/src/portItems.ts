// A node's items per port, `{"port": [items]}`, as typed by the user: the input of "Execute node
// with input…" and a pinned output share the same shape and the same checks.
import type { PortItems } from "./types";

/** The key the API reserves for outputs stored by reference (docs/api.md, "Large outputs"). */
export const REFERENCE_KEY = "$nodedrop_ref";

/** ``text`` parsed as ``{port: [items]}``; throws an Error that says what is wrong. */
export function parsePortItems(text: string): PortItems {
  const value: unknown = JSON.parse(text);
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error('expected {"port": [items]}');
  for (const [port, items] of Object.entries(value)) {
    if (!Array.isArray(items)) throw new Error(`port “${port}” must hold a list of items`);
    items.forEach((item, i) => {
      if (!item || typeof item !== "object" || Array.isArray(item))
        throw new Error(`item ${i} of port “${port}” must be a JSON object`);
    });
  }
  return value as PortItems;
}

/** Whether an output holds an item stored by reference (a large output), which cannot be
 * pinned: the API refuses the reserved key in `pinned_output`. */
export function holdsReference(output: PortItems): boolean {
  return Object.values(output).some((items) =>
    items.some((item) => !!item && typeof item === "object" && REFERENCE_KEY in item),
  );
}
