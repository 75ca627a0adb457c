// A failed node's stack trace: the user's own frames (a code node's source) first and open,
// the engine's frames folded under a summary (the whole trace, as recorded, inside).
import { ownFrames, parseStack } from "../stackTrace";

export function StackTrace({ stack }: { stack: string }) {
  const parsed = parseStack(stack);
  const own = ownFrames(parsed);
  const engine = parsed.frames.length - own.length;
  return (
    <div className="stack-trace">
      {own.length > 0 && (
        <section aria-label="Your code">
          <h5>In your code (innermost first)</h5>
          <ol className="own-frames">
            {own.map((f, i) => (
              <li key={i}>
                line {f.line}
                {f.func ? `, in ${f.func}` : ""}
                {f.source && (
                  <>
                    : <code>{f.source}</code>
                  </>
                )}
              </li>
            ))}
          </ol>
        </section>
      )}
      <details open={own.length === 0 && parsed.frames.length === 0}>
        <summary>
          {parsed.frames.length
            ? `Full stack trace (${engine} engine frame${engine === 1 ? "" : "s"}${own.length ? `, ${own.length} of yours` : ""})`
            : "Stack trace"}
        </summary>
        <pre className="code" tabIndex={0}>
          {stack}
        </pre>
      </details>
    </div>
  );
}
