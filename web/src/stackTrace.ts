// A Python stack trace split into the user's own frames (a code node's source, `<code>`) and
// the engine's (nodedrop's and the libraries'), so that the user's are shown first and the
// engine's folded.

export interface Frame {
  file: string;
  line: number;
  func: string;
  /** The source line Python printed under the frame, if any. */
  source: string;
  own: boolean;
}

export interface ParsedStack {
  frames: Frame[];
  /** The lines after the last frame: the exception's type and message. */
  exception: string;
}

/** Files that hold the user's own code. */
const OWN_FILES = new Set(["<code>"]);
const FRAME = /^\s*File "([^"]+)", line (\d+)(?:, in (.+))?$/;

export function parseStack(stack: string): ParsedStack {
  const lines = stack.replace(/\s+$/, "").split("\n");
  const frames: Frame[] = [];
  let afterLast = 0;
  for (let i = 0; i < lines.length; i++) {
    const m = FRAME.exec(lines[i]);
    if (!m) continue;
    const next = lines[i + 1];
    // The source line is indented deeper than "File"; Python's carets (^^^) may follow it.
    const source = next !== undefined && !FRAME.test(next) && /^\s{4,}\S/.test(next) ? next.trim() : "";
    frames.push({ file: m[1], line: Number(m[2]), func: m[3] ?? "", source, own: OWN_FILES.has(m[1]) });
    afterLast = i + (source ? 2 : 1);
    while (afterLast < lines.length && /^\s+[~^\s]+$/.test(lines[afterLast])) afterLast++;
  }
  const exception = (frames.length ? lines.slice(afterLast) : lines).join("\n").trim();
  return { frames, exception };
}

/** The user's frames, innermost first (where it failed comes first). */
export function ownFrames(parsed: ParsedStack): Frame[] {
  return parsed.frames.filter((f) => f.own).reverse();
}
