// A parameter's label: the title its schema chose (the built-in node types set one where the
// field's name reads badly), else the field's name made readable. pydantic writes a title for
// every field, title-casing the name ("Url" of url), so such a title counts as none.

/** Words spelled in capitals in a label made from a field's name. */
const ACRONYMS = new Set(["id", "ids", "url", "urls", "json", "http", "https", "html", "api", "ms", "utc"]);

/** pydantic's title for a field without one: ``default_output`` -> "Default Output". */
function generatedTitle(name: string): string {
  return name
    .split("_")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}

/** ``callback_url`` -> "Callback URL": the first word capitalised, acronyms in capitals. */
function readable(name: string): string {
  return name
    .split("_")
    .filter((word) => word !== "")
    .map((word, index) => {
      if (ACRONYMS.has(word.toLowerCase())) return word.toUpperCase();
      return index === 0 ? word.charAt(0).toUpperCase() + word.slice(1) : word;
    })
    .join(" ");
}

/** The label of a field: a title chosen by the schema stays; a generated one is replaced. */
export function fieldLabel(name: string, title: string | undefined): string {
  if (title !== undefined && title !== generatedTitle(name)) return title;
  return readable(name);
}
