// A node type's part of docs/nodes.md, for the docs shown in a node's settings.

/** The section of ``markdown`` about ``type``: the one headed by it (``### `set` ``), else the
 * one whose table has a row for it (the triggers share one section), down to the next heading
 * of the same or a higher level. null when the docs say nothing of the type. */
export function docsSection(markdown: string, type: string): string | null {
  const lines = markdown.split("\n");
  const headings = lines.flatMap((line, i) => {
    const m = /^(#{2,4}) /.exec(line);
    return m ? [{ line: i, level: m[1].length }] : [];
  });
  const section = (start: number) => {
    const level = headings.find((h) => h.line === start)!.level;
    const end = headings.find((h) => h.line > start && h.level <= level)?.line ?? lines.length;
    return lines.slice(start, end).join("\n").trim();
  };
  const code = "`" + type + "`";
  const own = headings.find((h) => lines[h.line].replace(/^#+ /, "").trim() === code);
  if (own) return section(own.line);
  const row = lines.findIndex((line) => line.startsWith(`| ${code} |`));
  if (row < 0) return null;
  const around = [...headings].reverse().find((h) => h.line < row);
  return around ? section(around.line) : null;
}
