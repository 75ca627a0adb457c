"""Each user's share of the runners: at most ``limit`` node attempts of one user queued for or
running on the runners at once (``NODEDROP_MAX_RUNNING_NODES_PER_USER``).

The runners take tasks in the order they are recorded. Without shares, a user whose executions
fan out to thousands of nodes fills that queue, and everyone else's next node waits behind all
of them. With shares, an attempt beyond its user's share is deferred (``NodeDeferred``) and
kept here instead of in the runners' queue; it is made ready when one of its user's attempts
ends, oldest first (a user's new attempts do not pass their deferred ones). Other users'
attempts pass it: the heavy user waits in their own queue.

The count is of this scheduler's executions (each partition has one scheduler): with several
schedulers, a user may hold up to ``limit`` attempts per scheduler. It is kept in memory and
rebuilt with the executions (:meth:`RunnerShares.sync`); an execution's attempts leave it when
their result, cancel or the execution's end is folded here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from nodedrop.contracts.events import (
    Event,
    ExecutionFinished,
    NodeCancelled,
    NodeFailed,
    NodeSucceeded,
)
from nodedrop.scheduler.core import ExecutionState, ShareFull
from nodedrop.scheduler.core.state import IN_FLIGHT

#: Events that end an attempt on the runners.
_ENDS_ATTEMPT = (NodeSucceeded, NodeFailed, NodeCancelled)


class RunnerShares:
    """The core's :class:`~nodedrop.scheduler.core.RunnerShare` for one scheduler process."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("a share of the runners is at least one attempt")
        self.limit = limit
        #: Attempts on the runners, per execution: {(node, attempt)}.
        self._attempts: dict[str, set[tuple[str, int]]] = {}
        self._user_of: dict[str, str] = {}
        self._count: Counter[str] = Counter()
        #: Executions with deferred attempts, per user, oldest first.
        self._waiting: dict[str, dict[str, None]] = {}

    # ------------------------------------------------------------------ the core's port
    def take(self, state: ExecutionState, node: str, attempt: int) -> ShareFull | None:
        execution_id = state.execution_id
        user = state.request.requested_by
        held = self._attempts.setdefault(execution_id, set())
        self._user_of[execution_id] = user
        if (node, attempt) in held:
            return None
        if self.limit is not None and (
            self._count[user] >= self.limit
            # First come, first served: a new attempt does not pass the user's deferred ones.
            or (self._waiting.get(user) and state.deferred.get(node) != attempt)
        ):
            self._waiting.setdefault(user, {})[execution_id] = None
            return ShareFull(user, self.limit)
        held.add((node, attempt))
        self._count[user] += 1
        return None

    # ------------------------------------------------------------------ keeping count
    def observe(self, execution_id: str, events: Iterable[Event]) -> None:
        """Let attempts that ``events`` end (a result, a cancel, the execution's end) give
        their place back."""
        held = self._attempts.get(execution_id)
        if held is None:
            return
        for event in events:
            if isinstance(event, ExecutionFinished):
                self.forget(execution_id)
                return
            if isinstance(event, _ENDS_ATTEMPT) and (event.node, event.attempt) in held:
                held.discard((event.node, event.attempt))
                self._count[self._user_of[execution_id]] -= 1

    def sync(self, state: ExecutionState) -> None:
        """Count an execution as its state says (after a rebuild from the stream): its
        attempts made ready and not ended, and its deferred ones as waiting."""
        self.forget(state.execution_id)
        if state.finished:
            return
        user = state.request.requested_by
        held = {
            (node_id, node.attempt)
            for node_id, node in state.nodes.items()
            if node.status in IN_FLIGHT and node.wait_until is None
        }
        self._attempts[state.execution_id] = held
        self._user_of[state.execution_id] = user
        self._count[user] += len(held)
        if state.deferred:
            self._waiting.setdefault(user, {})[state.execution_id] = None

    def forget(self, execution_id: str) -> None:
        """Stop counting an execution (it ended, or is to be rebuilt, or is no longer ours)."""
        held = self._attempts.pop(execution_id, None)
        user = self._user_of.pop(execution_id, None)
        if user is None:
            return
        if held:
            self._count[user] -= len(held)
        if self._count[user] <= 0:
            del self._count[user]
        waiting = self._waiting.get(user)
        if waiting is not None:
            waiting.pop(execution_id, None)
            if not waiting:
                del self._waiting[user]

    # ------------------------------------------------------------------ what may go now
    def has_room(self, user: str) -> bool:
        return self.limit is None or self._count[user] < self.limit

    def waiting(self) -> list[tuple[str, list[str]]]:
        """Users with room on the runners and their executions with deferred attempts,
        oldest first."""
        return [
            (user, list(executions))
            for user, executions in self._waiting.items()
            if self.has_room(user)
        ]

    def done_waiting(self, execution_id: str) -> None:
        """The execution has no deferred attempt left."""
        user = self._user_of.get(execution_id)
        waiting = self._waiting.get(user) if user is not None else None
        if waiting is not None:
            waiting.pop(execution_id, None)
            if not waiting and user is not None:
                del self._waiting[user]

    def running(self, user: str) -> int:
        """Attempts of ``user`` counted on the runners now."""
        return self._count[user]
