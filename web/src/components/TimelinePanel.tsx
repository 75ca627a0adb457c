// Steps through an execution's events one at a time; the canvas shows the state after the
// chosen event.
import { useEffect, useRef } from "react";
import { clockTime } from "../format";
import { deferredLabel, waitingLabel } from "../state/executionState";
import type { ExecutionEvent } from "../types";

export function describeEvent(e: ExecutionEvent): string {
  const who = e.node ? ` ${e.node}` : "";
  const attempt = e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : "";
  switch (e.type) {
    case "ExecutionQueued":
      return `Execution queued. ${waitingLabel({
        scope: String(e.data?.scope ?? ""),
        key: String(e.data?.key ?? ""),
        limit: typeof e.data?.limit === "number" ? e.data.limit : 0,
      })}`;
    case "NodeDeferred":
      return `NodeDeferred${who}${attempt}. ${deferredLabel({
        key: String(e.data?.key ?? ""),
        limit: typeof e.data?.limit === "number" ? e.data.limit : 0,
      })}`;
    case "ExecutionFinished":
      return `Execution finished: ${e.data?.status ?? "?"}`;
    case "NodeSkipped":
      return `NodeSkipped${who} (${e.data?.reason ?? ""})`;
    case "NodeFailed":
      return `NodeFailed${who}${attempt}: ${e.data?.error?.type ?? ""}`;
    default:
      return `${e.type}${who}${attempt}`;
  }
}

export function TimelinePanel({
  events,
  step,
  onStep,
}: {
  events: ExecutionEvent[];
  /** Index of the event shown; null: the latest state. */
  step: number | null;
  onStep: (step: number | null) => void;
}) {
  const list = useRef<HTMLOListElement>(null);
  const last = events.length - 1;
  const at = step ?? last;
  useEffect(() => {
    list.current?.querySelector(".current")?.scrollIntoView({ block: "nearest" });
  }, [at]);
  if (events.length === 0) return <p className="muted pad">No events yet.</p>;
  const go = (n: number) => onStep(Math.max(0, Math.min(last, n)));
  return (
    <div className="timeline">
      <div className="panel-tools">
        <button type="button" onClick={() => go(0)} disabled={at <= 0} aria-label="First event">
          |◀
        </button>
        <button type="button" onClick={() => go(at - 1)} disabled={at <= 0}>
          ◀ Previous
        </button>
        <span className="step-label" aria-live="polite">
          Step {at + 1} of {events.length}: {describeEvent(events[at])}
        </span>
        <button type="button" onClick={() => go(at + 1)} disabled={at >= last}>
          Next ▶
        </button>
        <button type="button" onClick={() => go(last)} disabled={at >= last} aria-label="Last event">
          ▶|
        </button>
        {step !== null && (
          <button type="button" className="ghost" onClick={() => onStep(null)}>
            Show latest
          </button>
        )}
      </div>
      <input
        type="range"
        min={0}
        max={last}
        value={at}
        aria-label="Timeline position"
        onChange={(e) => go(Number(e.target.value))}
      />
      <ol className="event-list" ref={list}>
        {events.map((e, i) => (
          <li key={e.seq} className={i === at ? "current" : i > at ? "future" : undefined}>
            <button type="button" onClick={() => go(i)} aria-current={i === at ? "step" : undefined}>
              <span className="seq">#{e.seq}</span>
              <time dateTime={e.time}>{clockTime(e.time)}</time>
              <span>{describeEvent(e)}</span>
            </button>
          </li>
        ))}
      </ol>
    </div>
  );
}
