import { expect, it } from "vitest";
import { runningList } from "./running";
import type { ExecutionSummary } from "./types";

const e = (id: string, status: "queued" | "running", created_at: string) => ({ id, status, created_at }) as ExecutionSummary;

it("lists queued and running executions once each, newest first", () => {
  const queued = [e("c", "queued", "2026-01-01T00:00:03Z"), e("b", "queued", "2026-01-01T00:00:02Z")];
  const running = [e("b", "running", "2026-01-01T00:00:02Z"), e("a", "running", "2026-01-01T00:00:01Z")];
  const list = runningList(queued, running);
  expect(list.map((x) => [x.id, x.status])).toEqual([
    ["c", "queued"],
    ["b", "running"], // started between the two reads: listed once, as running
    ["a", "running"],
  ]);
  expect(runningList([], [])).toEqual([]);
});
