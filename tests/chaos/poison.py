"""Scenario 6: poison input while healthy executions run.

- A node that always raises (its far side answers 500): it fails after its retries and its
  execution ends ``failed``.
- Malformed messages on the event subjects of running executions (bytes that are no JSON, JSON
  that is no event, a 7.5 MB blob), each on a subject a different consumer reads: every
  consumer that gets one terminates it, JetStream's advisory lands in the dead-letter stream,
  and the scheduler fails the execution (error type ``DeadLetter``).
- Malformed messages on the subject of no execution: dead-lettered, nothing else.
- A message over the 8 MB limit: refused when published, nothing stored.

The executions hit by malformed messages run a 5 s ``wait`` first, so that they are surely
running when it lands. No consumer may crash, and every healthy execution must succeed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from tests.chaos.checks import Expectations, Result, common_check
from tests.chaos.cluster import Cluster, cluster, until
from tests.chaos.scenarios import Env
from tests.chaos.workload import five_nodes, submit_spread, wait_finished

from nodedrop.contracts import routing, subjects
from nodedrop.contracts.errors import DEAD_LETTER
from nodedrop.contracts.events import ExecutionFinished, ExecutionStarted

#: (event type of the subject, payload): what lands on each victim execution's subject.
MALFORMED: list[tuple[str, bytes]] = [
    ("NodeSucceeded", b"\x00\xff not json"),  # scheduler and notifier
    ("NodeSucceeded", b'{"type": "NodeSucceeded", "execution_id": "x"}'),  # no event
    ("NodeReady", b"[1, 2, 3]"),  # runners and notifier
    ("NodeStarted", b"x" * (7 * 1024 * 1024 + 512 * 1024)),  # 7.5 MB: scheduler and notifier
    ("NodeLogged", b"{}"),  # only the notifier reads these
]
OVER_LIMIT = b"y" * (9 * 1024 * 1024)


def always_raises(effects_url: str) -> dict[str, Any]:
    return {
        "name": "chaos always raises",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "charge",
                "type": "http_request",
                "parameters": {"method": "POST", "url": f"{effects_url}/fail"},
                "retry": {"max_attempts": 3, "initial_interval_ms": 100},
            },
        ],
        "connections": [{"from": "start", "to": "charge"}],
    }


WAITING: dict[str, Any] = {
    "name": "chaos victim",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "pause", "type": "wait", "parameters": {"ms": 5000}},
        {"id": "done", "type": "noop"},
    ],
    "connections": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "done"}],
}


async def s6_poison(env: Env) -> Result:
    sizes = env.sizes
    raising = 5
    result = Result(
        "6. poison input",
        f"{sizes.executions} healthy executions x 5 nodes over {sizes.spread_s:g} s, "
        f"{raising} with a node that always raises, {len(MALFORMED)} hit by malformed events, "
        "2 runners",
        "",
    )
    async with cluster(env.postgres, "s6", runners=2, effect_delay_s=0.1) as c:
        started = time.monotonic()
        healthy = asyncio.create_task(
            submit_spread(c, five_nodes(c.side_effects.url), sizes.executions, sizes.spread_s)
        )
        failing = {
            await c.submit(always_raises(c.side_effects.url)): always_raises(c.side_effects.url)
            for _ in range(raising)
        }
        victims = {await c.submit(WAITING): WAITING for _ in MALFORMED}
        injected = await inject(c, list(victims))
        submitted = {**await healthy, **failing, **victims}
        await wait_finished(c, set(submitted), 120)
        result.took_s = time.monotonic() - started
        status: dict[str, str | None] = dict.fromkeys(submitted, "succeeded")
        status.update(dict.fromkeys([*failing, *victims], "failed"))
        record = await common_check(c, result, Expectations(submitted, status=status))
        letters = await dead_letter_seqs(c)

    missing = [key for key in injected if key not in letters]
    result.expect(not missing, f"malformed messages not dead-lettered: {missing}")
    finished = {e.execution_id: e for e in record.events() if isinstance(e, ExecutionFinished)}
    not_dead_letter = [
        v for v in victims if (error := finished[v].error) is None or error.type != DEAD_LETTER
    ]
    result.expect(not not_dead_letter, f"victims not failed by DeadLetter: {not_dead_letter}")
    raised = [f for f in failing if (error := finished[f].error) and error.type == DEAD_LETTER]
    result.expect(not raised, "executions of the raising node were dead-lettered instead")
    result.faults = (
        f"{raising} x a node whose request always fails (3 attempts each); "
        f"{len(MALFORMED)} malformed events on running executions' subjects (no JSON, no "
        "event, 7.5 MB) and 1 on a subject of no execution; 1 of 9 MB (refused by the server)"
    )
    result.notes.append(
        f"{len(injected)} malformed messages stored, {len(letters)} dead-letter advisories "
        "(one per consumer that gave up on one); the delivery-limit path: "
        "tests/integration/scheduling/test_dead_letters.py"
    )
    return result


async def inject(c: Cluster, victims: list[str]) -> list[tuple[str, int]]:
    """Publish the malformed messages once each victim runs, each to the partition stream of
    its subject's execution; returns where they are stored: (stream, sequence)."""

    async def all_started() -> bool:
        seen: set[str] = set()
        for stream in c.layout.streams:
            info = await c.js.stream_info(
                stream, subjects_filter=routing.events_of_type(ExecutionStarted)
            )
            seen |= {routing.execution_id_of(s) for s in (info.state.subjects or {})}
        return set(victims) <= seen

    await until(all_started, 30, "victim executions started")
    stored = []
    for victim, (event_type, payload) in zip(victims, MALFORMED, strict=True):
        subject = routing.execution_subject(victim, event_type)
        stream = c.layout.stream_of(victim)
        stored.append((stream, (await c.js.publish(subject, payload, stream=stream)).seq))
    nobody_id = str(uuid.uuid4())
    nobody = routing.execution_subject(nobody_id, "ExecutionRequested")
    nobody_stream = c.layout.stream_of(nobody_id)
    ack = await c.js.publish(nobody, b"not a request", stream=nobody_stream)
    stored.append((nobody_stream, ack.seq))
    try:
        await c.js.publish(nobody, OVER_LIMIT, stream=nobody_stream)
    except Exception:  # refused: the client knows the server's max_payload
        pass
    else:
        raise AssertionError("a 9 MB event was accepted")
    return stored


async def dead_letter_seqs(c: Cluster) -> list[tuple[str, int]]:
    """The events stream and sequence each dead-letter advisory names (one advisory per
    consumer that gave up on a message)."""
    info = await c.js.stream_info(subjects.DEAD_LETTERS_STREAM)
    seqs = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await c.js.get_msg(subjects.DEAD_LETTERS_STREAM, seq)
        advisory = json.loads(msg.data or b"{}")
        seqs.append((str(advisory["stream"]), int(advisory["stream_seq"])))
    return seqs
