"""A local HTTP server that stands for the outside world: it counts every request by its
``Idempotency-Key``, so a test can tell a side effect that happened twice.

It runs in a thread of the test process (the services reach it on loopback, with
``NODEDROP_HTTP_ALLOW_PRIVATE=true``). ``delay_s`` holds every answer back, so that nodes are
still running when a fault is injected; requests to paths under ``/fail`` are answered 500.
"""

from __future__ import annotations

import time
from collections import Counter

from tests.fixtures.http_server import LocalHttpServer, Request

NO_KEY = "<none>"


class SideEffectServer(LocalHttpServer):
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        # HTTP/1.1 with keep-alive: the runners reuse their connections, as to a real service.
        super().__init__(self._answer, method="POST", keep_alive=True)

    def counts(self) -> Counter[str]:
        """Requests received per ``Idempotency-Key`` so far."""
        return Counter(request.idempotency_key or NO_KEY for request in self.requests())

    def _answer(self, request: Request) -> tuple[int, dict[str, bool]]:
        # The request is counted when it arrives: a caller killed while waiting for the answer
        # has still caused the effect.
        if self.delay_s:
            time.sleep(self.delay_s)
        # /fail...: a far side that always errs (the node raises HttpServerError).
        failing = request.path.startswith("/fail")
        return (500 if failing else 200), {"ok": not failing}
