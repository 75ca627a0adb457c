import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ExecutionEvent } from "../types";
import { ExecutionStream, type ConnectionState } from "./liveStream";

/** A stand-in for the browser's WebSocket that the test drives by hand. */
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: ((c: { code: number }) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    FakeSocket.all.push(this);
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  send(event: Partial<ExecutionEvent>) {
    this.onmessage?.({ data: JSON.stringify(event) });
  }
  drop(code: number) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  close() {
    this.readyState = 3;
  }
}

function setup(afterSeq = 0) {
  const events: ExecutionEvent[] = [];
  const states: [ConnectionState, string | undefined][] = [];
  const stream = new ExecutionStream({
    executionId: "e1",
    afterSeq,
    url: (id, after) => `ws://host/ws/executions/${id}?after_seq=${after}`,
    protocols: ["nodedrop", "nodedrop.key.aw"],
    onEvent: (e) => events.push(e),
    onConnection: (s, d) => states.push([s, d]),
    retryDelaysMs: [100, 1000],
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  });
  stream.start();
  return { stream, events, states };
}

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe("ExecutionStream", () => {
  it("asks for the events after the seq it starts from", () => {
    setup(7);
    expect(FakeSocket.all[0].url).toBe("ws://host/ws/executions/e1?after_seq=7");
  });

  it("offers the key in the subprotocols, on every connection", () => {
    setup();
    FakeSocket.all[0].drop(1006);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all.map((s) => s.protocols)).toEqual([
      ["nodedrop", "nodedrop.key.aw"],
      ["nodedrop", "nodedrop.key.aw"],
    ]);
  });

  it("reconnects after a drop from the last seq it delivered, with a notice meanwhile", () => {
    const { events, states } = setup();
    const first = FakeSocket.all[0];
    first.open();
    first.send({ seq: 1, type: "ExecutionRequested" });
    first.send({ seq: 2, type: "ExecutionStarted" });
    first.drop(1006);
    expect(states.at(-1)?.[0]).toBe("reconnecting");
    expect(states.at(-1)?.[1]).toContain("connection lost");
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all).toHaveLength(2);
    const second = FakeSocket.all[1];
    expect(second.url).toContain("after_seq=2");
    second.open();
    expect(states.at(-1)?.[0]).toBe("open");
    // The server repeats nothing in theory; a repeat would still be dropped here.
    second.send({ seq: 2, type: "ExecutionStarted" });
    second.send({ seq: 3, type: "ExecutionFinished" });
    second.drop(1000);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(states.at(-1)?.[0]).toBe("finished");
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it("waits longer after repeated failures", () => {
    setup();
    FakeSocket.all[0].drop(1006);
    vi.advanceTimersByTime(100);
    FakeSocket.all[1].drop(1006);
    vi.advanceTimersByTime(999);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(3);
  });

  it("reconnects when closed normally before the execution finished", () => {
    setup();
    FakeSocket.all[0].open();
    FakeSocket.all[0].send({ seq: 1, type: "ExecutionRequested" });
    FakeSocket.all[0].drop(1000);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all[1].url).toContain("after_seq=1");
  });

  it("stops for good when the key or the execution is refused", () => {
    const { states } = setup();
    FakeSocket.all[0].drop(4401);
    expect(states.at(-1)).toEqual(["refused", "the API key was not accepted"]);
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("stop() ends reconnecting", () => {
    const { stream } = setup();
    FakeSocket.all[0].drop(1006);
    stream.stop();
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.all).toHaveLength(1);
  });
});
