// The pure parts of the expression editor: where the `{{ }}` expressions of a parameter are,
// their tokens (for highlighting), what to offer after `item.` or `nodes["`, and the text a
// click on a field of an items table inserts. The language itself (docs/nodes.md,
// "Expressions") is evaluated by the API (`POST /api/expressions/preview`), never here.
import type { Item, JsonValue, PortItems } from "./types";

/** The functions an expression may call (docs/nodes.md). */
export const FUNCTIONS = [
  "len", "str", "int", "float", "bool", "round", "abs", "min", "max", "sum", "sorted",
  "reversed", "any", "all", "range", "list", "enumerate", "zip", "to_json", "from_json",
];
export const SCOPE_NAMES = ["item", "nodes", "execution"];
const KEYWORDS = new Set(["and", "or", "not", "in", "is", "if", "else", "for", "True", "False", "None", "true", "false", "null"]);

export interface Segment {
  /** Where the expression's text starts (after `{{`) and ends (before `}}`, or the end). */
  from: number;
  to: number;
  closed: boolean;
}

/** The `{{ … }}` parts of a template. A `}}` inside a string literal does not end one (the
 * evaluator tries each `}}` until the text parses; strings are the usual reason). */
export function expressionSegments(text: string): Segment[] {
  const segments: Segment[] = [];
  let at = 0;
  for (;;) {
    const open = text.indexOf("{{", at);
    if (open < 0) return segments;
    const from = open + 2;
    let quote: string | null = null;
    let end = -1;
    for (let i = from; i < text.length; i += 1) {
      const c = text[i];
      if (quote) {
        if (c === "\\") i += 1;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "}" && text[i + 1] === "}" && text[i + 2] !== "}") {
        end = i;
        break;
      }
    }
    if (end < 0) {
      segments.push({ from, to: text.length, closed: false });
      return segments;
    }
    segments.push({ from, to: end, closed: true });
    at = end + 2;
  }
}

export type TokenKind = "brace" | "string" | "number" | "keyword" | "name" | "function" | "property" | "operator";
export interface Token {
  from: number;
  to: number;
  kind: TokenKind;
}

const TOKEN = /\s+|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|([A-Za-z_]\w*)|(\*\*|\/\/|[=!<>]=|[-+*/%<>()[\]{}.,:])|./gy;

/** Tokens of every expression in ``text``, for highlighting; text outside `{{ }}` has none. */
export function templateTokens(text: string): Token[] {
  const tokens: Token[] = [];
  for (const seg of expressionSegments(text)) {
    tokens.push({ from: seg.from - 2, to: seg.from, kind: "brace" });
    const body = text.slice(seg.from, seg.to);
    TOKEN.lastIndex = 0;
    let previous = "";
    let match: RegExpExecArray | null;
    while (TOKEN.lastIndex < body.length && (match = TOKEN.exec(body))) {
      const from = seg.from + match.index;
      const to = from + match[0].length;
      if (match[1]) tokens.push({ from, to, kind: "string" });
      else if (match[2]) tokens.push({ from, to, kind: "number" });
      else if (match[3]) {
        const word = match[3];
        const kind: TokenKind = KEYWORDS.has(word)
          ? "keyword"
          : previous === "."
            ? "property"
            : FUNCTIONS.includes(word) && body.slice(TOKEN.lastIndex).trimStart().startsWith("(")
              ? "function"
              : "name";
        tokens.push({ from, to, kind });
      } else if (match[4]) tokens.push({ from, to, kind: "operator" });
      if (match[0].trim()) previous = match[0];
    }
    if (seg.closed) tokens.push({ from: seg.to, to: seg.to + 2, kind: "brace" });
  }
  return tokens;
}

/** What the editor knows of the data an expression will see: the last run's. */
export interface ExpressionData {
  /** The node's first input item in the last run (what the preview evaluates with). */
  item: Item | null;
  /** Every node of the workflow, by id (the ones that ran have their output). */
  nodeIds: string[];
  /** The last run's output of each node that has one. */
  nodes: Record<string, PortItems>;
}

export interface Completion {
  label: string;
  detail?: string;
}
export interface CompletionResult {
  /** Where the replaced text starts. */
  from: number;
  options: Completion[];
}

function fieldsOf(items: Item[] | undefined): string[] {
  const names: string[] = [];
  for (const item of (items ?? []).slice(0, 50))
    for (const key of Object.keys(item ?? {})) if (!names.includes(key)) names.push(key);
  return names;
}

function describe(value: JsonValue | undefined): string {
  if (value === undefined) return "";
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

function keyOptions(item: Item | null | undefined, keys: string[]): Completion[] {
  return keys.map((key) => ({ label: key, detail: describe(item?.[key]) }));
}

/** What to offer at ``pos`` in ``text``: fields after `item.` or `item["`, node ids after
 * `nodes["` or `nodes.`, ports after a node, the fields of a node's items after
 * `nodes["id"].main[0].`, `id`/`trigger` after `execution.`, else names and functions. */
export function completionsAt(text: string, pos: number, data: ExpressionData): CompletionResult | null {
  const seg = expressionSegments(text).find((s) => s.from <= pos && pos <= s.to);
  if (!seg) return null;
  const before = text.slice(seg.from, pos);
  const item = data.item;
  let m: RegExpExecArray | null;
  if ((m = /\bitem\.(\w*)$/.exec(before)) || (m = /\bitem\[["']([^"']*)$/.exec(before)))
    return { from: pos - m[1].length, options: keyOptions(item, Object.keys(item ?? {})) };
  if ((m = /\bexecution\.(\w*)$/.exec(before)))
    return { from: pos - m[1].length, options: [{ label: "id" }, { label: "trigger" }] };
  const node = String.raw`\bnodes(?:\[["']([\w-]+)["']\]|\.([\w-]+))`;
  const port = String.raw`(?:\[["']([\w-]+)["']\]|\.([\w-]+))`;
  if ((m = new RegExp(`${node}${port}\\[(\\d+)\\](?:\\.(\\w*)|\\[["']([^"']*))$`).exec(before))) {
    const items = data.nodes[m[1] ?? m[2]]?.[m[3] ?? m[4]];
    const chosen = items?.[Number(m[5])] ?? null;
    const typed = m[6] ?? m[7] ?? "";
    return { from: pos - typed.length, options: keyOptions(chosen, fieldsOf(items)) };
  }
  if ((m = new RegExp(`${node}(?:\\.(\\w*)|\\[["']([^"']*))$`).exec(before))) {
    const output = data.nodes[m[1] ?? m[2]] ?? {};
    const typed = m[3] ?? m[4] ?? "";
    return { from: pos - typed.length, options: Object.keys(output).map((p) => ({ label: p, detail: `${output[p].length} items` })) };
  }
  if ((m = /\bnodes(?:\[["']([\w-]*)|\.([\w-]*))$/.exec(before))) {
    const typed = m[1] ?? m[2] ?? "";
    return {
      from: pos - typed.length,
      options: data.nodeIds.map((id) => ({ label: id, detail: data.nodes[id] ? "ran" : "no output yet" })),
    };
  }
  if ((m = /(?:^|[^\w.])([A-Za-z_]\w*)$/.exec(before)))
    return {
      from: pos - m[1].length,
      options: [...SCOPE_NAMES.map((label) => ({ label, detail: "in scope" })), ...FUNCTIONS.map((label) => ({ label, detail: "function" }))],
    };
  return null;
}

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]*$/;

function keyAccess(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/** The expression that reads ``key`` of the current item (a click in the input table). */
export function itemFieldExpression(key: string): string {
  return `item${keyAccess(key)}`;
}

/** The expression that reads ``key`` of a node's first item on a port (the output table). */
export function nodeFieldExpression(node: string, port: string, key: string): string {
  return `nodes[${JSON.stringify(node)}]${keyAccess(port)}[0]${keyAccess(key)}`;
}

/** ``text`` with `{{ expression }}` put at ``at`` (or the end), and where the cursor goes. */
export function insertExpression(text: string, expression: string, at: number = text.length): { text: string; cursor: number } {
  const inside = expressionSegments(text).some((s) => s.from <= at && at <= s.to);
  const piece = inside ? expression : `{{ ${expression} }}`;
  return { text: text.slice(0, at) + piece + text.slice(at), cursor: at + piece.length };
}

/** The first input item of a node in a run (the preview's `item`), and every node's output. */
export function expressionData(nodeIds: string[], input: PortItems | null | undefined, outputs: Record<string, PortItems | null | undefined>): ExpressionData {
  const ports = input ? Object.keys(input) : [];
  const port = ports.includes("main") ? "main" : ports[0];
  const nodes: Record<string, PortItems> = {};
  for (const [id, output] of Object.entries(outputs)) if (output) nodes[id] = output;
  return { item: (port && input?.[port]?.[0]) || null, nodeIds, nodes };
}

/** What ``node`` would get from its parents' outputs (per input port, in connection order):
 * the preview's input for a node that has not run yet. Null when no parent has output. */
export function inputFromParents(
  node: string,
  connections: { from: string; to: string; output?: string; input?: string }[],
  outputs: Record<string, PortItems | null | undefined>,
): PortItems | null {
  const input: PortItems = {};
  let found = false;
  for (const c of connections) {
    if (c.to !== node) continue;
    const items = outputs[c.from]?.[c.output ?? "main"];
    if (!items) continue;
    found = true;
    (input[c.input ?? "main"] ??= []).push(...items);
  }
  return found ? input : null;
}
