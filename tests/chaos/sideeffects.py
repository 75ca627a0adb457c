"""A local HTTP server that stands for the outside world: it counts every request by its
``Idempotency-Key``, so a test can tell a side effect that happened twice.

It runs in a thread of the test process (the services reach it on loopback, with
``NODEDROP_HTTP_ALLOW_PRIVATE=true``). ``delay_s`` holds every answer back, so that nodes are
still running when a fault is injected; requests to paths under ``/fail`` are answered 500.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NO_KEY = "<none>"


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 overflows under many runner slots on a busy machine
    # (requests then fail with ReadError, tests/e2e/test_crash_recovery.py found it).
    request_queue_size = 128
    daemon_threads = True


class SideEffectServer:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def counts(self) -> Counter[str]:
        """Requests received per ``Idempotency-Key`` so far."""
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                # Counted when the request arrives: a caller killed while waiting for the
                # answer has still caused the effect.
                owner._record(self.headers.get("Idempotency-Key") or NO_KEY)
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                # /fail...: a far side that always errs (the node raises HttpServerError).
                status = 500 if self.path.startswith("/fail") else 200
                body = b'{"ok": true}' if status == 200 else b'{"ok": false}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller was killed while it waited: the effect happened anyway

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per request would drown the run's output

        return Handler
