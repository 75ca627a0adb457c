// Items of one node's input or output: a port chooser, then a table or the raw JSON.
import { useState } from "react";
import type { Item, PortItems } from "../types";

const MAX_ROWS = 200;
const MAX_COLUMNS = 20;

function cell(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** ``onPick``: a column's name is a button that picks the field (to insert its expression). */
export function ItemsTable({ items, onPick }: { items: Item[]; onPick?: (key: string) => void }) {
  if (items.length === 0) return <p className="muted">No items.</p>;
  const columns: string[] = [];
  for (const item of items.slice(0, MAX_ROWS))
    for (const key of Object.keys(item ?? {})) if (!columns.includes(key) && columns.length < MAX_COLUMNS) columns.push(key);
  return (
    <div className="table-scroll">
      <table className="table items">
        <thead>
          <tr>
            <th scope="col">#</th>
            {columns.length === 0 ? (
              <th scope="col">(empty item)</th>
            ) : (
              columns.map((c) => (
                <th scope="col" key={c}>
                  {onPick ? (
                    <button type="button" className="field-pick" aria-label={`${c}: insert its expression`} title="Insert its expression into the parameter field focused last" onClick={() => onPick(c)}>
                      {c}
                    </button>
                  ) : (
                    c
                  )}
                </th>
              ))
            )}
          </tr>
        </thead>
        <tbody>
          {items.slice(0, MAX_ROWS).map((item, i) => (
            <tr key={i}>
              <td>{i + 1}</td>
              {columns.length === 0 ? <td>{"{}"}</td> : columns.map((c) => <td key={c}>{cell(item?.[c])}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
      {items.length > MAX_ROWS && <p className="muted">Showing {MAX_ROWS} of {items.length} items; see the JSON view for all.</p>}
    </div>
  );
}

export function ItemsView({
  label,
  data,
  onPickField,
}: {
  label: string;
  data: PortItems | null;
  /** Makes the table's column names buttons that pick a field of the port shown. */
  onPickField?: (port: string, key: string) => void;
}) {
  const ports = Object.keys(data ?? {});
  const [port, setPort] = useState<string | null>(null);
  const [mode, setMode] = useState<"table" | "json">("table");
  const shown = port && ports.includes(port) ? port : ports[0];
  if (!data) return null;
  const items = shown ? data[shown] ?? [] : [];
  const count = ports.reduce((n, p) => n + (Array.isArray(data[p]) ? data[p].length : 0), 0);
  return (
    <section className="items-view" aria-label={label}>
      <div className="items-head">
        <h4>
          {label} <span className="muted">({count} item{count === 1 ? "" : "s"})</span>
        </h4>
        <div className="segmented" role="group" aria-label={`${label} view`}>
          <button type="button" aria-pressed={mode === "table"} onClick={() => setMode("table")}>
            Table
          </button>
          <button type="button" aria-pressed={mode === "json"} onClick={() => setMode("json")}>
            JSON
          </button>
        </div>
      </div>
      {ports.length > 1 && (
        <div className="segmented ports" role="group" aria-label={`${label} port`}>
          {ports.map((p) => (
            <button type="button" key={p} aria-pressed={p === shown} onClick={() => setPort(p)}>
              {p} ({data[p]?.length ?? 0})
            </button>
          ))}
        </div>
      )}
      {ports.length === 0 ? (
        <p className="muted">Nothing on any port.</p>
      ) : mode === "table" ? (
        <ItemsTable items={Array.isArray(items) ? items : []} onPick={onPickField && shown ? (key) => onPickField(shown, key) : undefined} />
      ) : (
        <pre className="code json" tabIndex={0}>{JSON.stringify(ports.length > 1 ? data : items, null, 2)}</pre>
      )}
    </section>
  );
}
