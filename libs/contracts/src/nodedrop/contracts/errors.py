"""Error types that one service records and another acts on."""

from __future__ import annotations

#: A node attempt whose task reached a runner a second time: the runner that had it first was
#: killed, lost its connection or was stopped before recording a result. The runner that gets
#: the task again does not run it; it records the attempt as failed with this type, and the
#: scheduler answers with one more attempt at once (docs/architecture.md, "Runner lost").
RUNNER_LOST = "RunnerLost"

#: An execution ended because one of its messages in the event stream could not be processed:
#: a consumer terminated it (it does not decode) or gave up after the delivery limit. The
#: scheduler fails the execution (docs/architecture.md, "Dead letters").
DEAD_LETTER = "DeadLetter"

#: A node whose input would not fit in one event: its ``NodeReady`` (or a ``wait`` node's
#: ``NodeWaiting``), input items and all, would encode to more than one message may carry. The
#: scheduler fails the node without running it and without retries: the same input would not
#: fit the next time either (docs/architecture.md, "Inputs too large for one event").
INPUT_TOO_LARGE = "InputTooLarge"
