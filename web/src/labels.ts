// Human labels for parameters whose schema title is only the field's name title-cased (the
// API's models leave most titles to pydantic, which makes "Url" of url and "Ms" of ms).

/** Labels for field names whose generated title reads badly; by name, across node types. */
const LABELS: Record<string, string> = {
  url: "URL",
  ms: "Wait (milliseconds)",
  cron: "Schedule (cron expression, UTC)",
  json: "JSON body",
  query: "Query parameters",
  default_output: "Default output port",
  output: "Output port",
  message: "Error message",
};

/** pydantic's title for a field without one: ``default_output`` -> "Default Output". */
function generatedTitle(name: string): string {
  return name
    .split("_")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}

/** The label of a field: a title chosen by the schema stays; a generated one is replaced when
 * a better one is known. */
export function fieldLabel(name: string, title: string | undefined): string {
  if (title !== undefined && title !== generatedTitle(name)) return title;
  return LABELS[name] ?? title ?? generatedTitle(name);
}
