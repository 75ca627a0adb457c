"""A local HTTP server that stands for the outside world: it records every request with its
``Idempotency-Key`` and what it answered, so a check can tell a side effect that happened twice,
one that never happened, and whether a node's output is an answer it really gave.

It runs in a thread of the test process (the services reach it on loopback, with
``NODEDROP_HTTP_ALLOW_PRIVATE=true``). ``delay_s`` holds every answer back, so that nodes are
still running when a fault is injected; requests to paths under ``/fail`` are answered 500.
Every answer names the request it answers (``{"ok": ..., "request": n}``): no two answers are
alike, so an output the far side never gave cannot pass for one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from tests.chaos.oracle import Effect
from tests.fixtures.http_server import LocalHttpServer, Request

NO_KEY = "<none>"


class SideEffectServer(LocalHttpServer):
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._answers: dict[int, tuple[int, dict[str, Any]]] = {}
        self._answers_lock = threading.Lock()
        # HTTP/1.1 with keep-alive: the runners reuse their connections, as to a real service.
        super().__init__(self._answer, method="POST", keep_alive=True)

    def counts(self) -> Counter[str]:
        """Requests received per ``Idempotency-Key`` so far."""
        return Counter(request.idempotency_key or NO_KEY for request in self.requests())

    def effects(self) -> list[Effect]:
        """Every request received so far with the answer it was given (None: not yet)."""
        with self._answers_lock:
            answers = dict(self._answers)
        effects = []
        for request in self.requests():
            status, body = answers.get(request.number, (None, None))
            effects.append(
                Effect(request.idempotency_key, request.path, request.body, status, body)
            )
        return effects

    def _answer(self, request: Request) -> tuple[int, dict[str, Any]]:
        # The request is counted when it arrives: a caller killed while waiting for the answer
        # has still caused the effect.
        if self.delay_s:
            time.sleep(self.delay_s)
        # /fail...: a far side that always errs (the node raises HttpServerError).
        failing = request.path.startswith("/fail")
        answer = (500 if failing else 200), {"ok": not failing, "request": request.number}
        with self._answers_lock:
            self._answers[request.number] = answer
        return answer
