// Follows one execution's events over the WebSocket, and survives disconnects: after a drop it
// reconnects with `after_seq` = the last seq it delivered, so nothing is missed or repeated.
import type { ExecutionEvent } from "../types";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "finished" | "refused";

export interface StreamOptions {
  executionId: string;
  /** Events with a seq at or below this are not wanted (already known). */
  afterSeq: number;
  url: (executionId: string, afterSeq: number) => string;
  /** Subprotocols offered with every connection: the API key travels in one of them
   * (eventsSocketProtocols), never in the URL, which servers and proxies log. */
  protocols?: string[];
  onEvent: (event: ExecutionEvent) => void;
  onConnection: (state: ConnectionState, detail?: string) => void;
  /** Delays before reconnect attempts 1, 2, ...; the last one repeats. */
  retryDelaysMs?: number[];
  WebSocketImpl?: typeof WebSocket;
}

const DEFAULT_DELAYS = [300, 1000, 2000, 5000];
/** Close codes after which reconnecting cannot help (docs/api.md, "WebSocket"). */
const REFUSED: Record<number, string> = {
  4401: "the API key was not accepted",
  4404: "no such execution",
};

export class ExecutionStream {
  private socket: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private stopped = false;
  private finished = false;
  lastSeq: number;

  constructor(private readonly options: StreamOptions) {
    this.lastSeq = options.afterSeq;
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= 1) socket.close(1000);
  }

  private connect(): void {
    if (this.stopped) return;
    const Impl = this.options.WebSocketImpl ?? WebSocket;
    this.options.onConnection(this.failures === 0 ? "connecting" : "reconnecting");
    const socket = new Impl(
      this.options.url(this.options.executionId, this.lastSeq),
      this.options.protocols ?? [],
    );
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.failures = 0;
      this.options.onConnection("open");
    };
    socket.onmessage = (message: MessageEvent) => {
      if (this.socket !== socket) return;
      let event: ExecutionEvent;
      try {
        event = JSON.parse(String(message.data));
      } catch {
        return; // not an event
      }
      if (typeof event.seq !== "number" || event.seq <= this.lastSeq) return;
      this.lastSeq = event.seq;
      if (event.type === "ExecutionFinished") this.finished = true;
      this.options.onEvent(event);
    };
    socket.onclose = (close: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (close.code in REFUSED) {
        this.stopped = true;
        this.options.onConnection("refused", REFUSED[close.code]);
        return;
      }
      if (this.finished) {
        this.stopped = true;
        this.options.onConnection("finished");
        return;
      }
      // Dropped before the end (network, API restart...): resume from the last seq.
      const delays = this.options.retryDelaysMs ?? DEFAULT_DELAYS;
      const delay = delays[Math.min(this.failures, delays.length - 1)];
      this.failures += 1;
      this.options.onConnection(
        "reconnecting",
        `connection lost (code ${close.code}); retrying in ${Math.round(delay / 100) / 10} s`,
      );
      this.timer = setTimeout(() => {
        this.timer = null;
        this.connect();
      }, delay);
    };
  }
}
