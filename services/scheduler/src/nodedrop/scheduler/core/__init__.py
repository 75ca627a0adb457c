"""The scheduler's pure core: no I/O, no clock, no random ids.

- :func:`evolve` folds one recorded event into an execution's state;
- :func:`step` folds an event and decides what to record in answer;
- :func:`tick` decides what the passing of time calls for (retries, timeouts);
- :func:`resume` re-derives decisions after a rebuild from the stream;
- :func:`queue` and :func:`admit` hold a new execution back until it has a concurrency slot;
- a :class:`RunnerShare` defers attempts beyond a user's share of the runners, and
  :func:`dispatch` makes them ready when the share allows;
- :func:`next_wakeup` says when :func:`tick` next has work.
"""

from nodedrop.scheduler.core.decide import (
    RunnerShare,
    ShareFull,
    admit,
    dispatch,
    next_wakeup,
    queue,
    resume,
    step,
    tick,
)
from nodedrop.scheduler.core.fold import evolve
from nodedrop.scheduler.core.plan import Plan, build_plan
from nodedrop.scheduler.core.state import ExecutionState, NodeState, NodeStatus

__all__ = [
    "ExecutionState",
    "NodeState",
    "NodeStatus",
    "Plan",
    "RunnerShare",
    "ShareFull",
    "admit",
    "build_plan",
    "dispatch",
    "evolve",
    "next_wakeup",
    "queue",
    "resume",
    "step",
    "tick",
]
