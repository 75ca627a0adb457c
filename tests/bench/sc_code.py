"""SC: the cost of one ``code`` node attempt (a fresh bubblewrap sandbox), next to ``set``'s.

A trigger and one node that makes the same trivial transform (``total = i * 2``) of 1 and of
1,000 items, as a ``code`` node (``all_items``) and as a ``set`` node, one execution after the
other, interleaved. Per attempt = the node's ``NodeStarted`` → ``NodeSucceeded`` (the runner
stamps both, around the node's run): for ``code`` that is a sandbox started, the items encoded,
sent, transformed, returned and decoded. ``NodeReady`` → ``NodeSucceeded`` adds the runner's
claim. Beside it, in the harness's own process: a sandbox doing nothing (``CodeNode.run`` of 1
item) and the bare interpreter start it contains (``python -I -S -c pass``), which is the most
a pool of warm processes could save.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

from tests.bench.load import ApiConnection, execution_body
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, fmt_ms, ms, percentile
from tests.bench.tap import EventTap

from nodedrop.runner.nodes.api import NodeContext
from nodedrop.runner.nodes.code import CodeNode
from nodedrop.runner.sandbox.mounts import runner_interpreter

ID = "SC"
SOURCE = "def main(items, ctx):\n    return [dict(item, total=item['i'] * 2) for item in items]\n"
SIZES = (1, 1000)
KINDS = ("code", "set")


def workflow(kind: str) -> dict[str, Any]:
    node: dict[str, Any] = (
        {"id": "work", "type": "code", "parameters": {"source": SOURCE}}
        if kind == "code"
        else {"id": "work", "type": "set", "parameters": {"values": {"total": "{{ item.i * 2 }}"}}}
    )
    return {
        "name": f"one {kind} node",
        "nodes": [{"id": "start", "type": "manual_trigger"}, node],
        "connections": [{"from": "start", "to": "work"}],
    }


def items(count: int) -> list[dict[str, Any]]:
    return [{"i": i, "name": f"item {i}"} for i in range(count)]


async def one_run(api: ApiConnection, tap: EventTap, body: bytes) -> tuple[float, float]:
    """(NodeStarted → NodeSucceeded, NodeReady → NodeSucceeded) of the node, in ms."""
    execution_id = await api.request_execution(body)
    finished = await tap.finished(execution_id, timeout_s=60)
    if finished.status != "succeeded":
        raise RuntimeError(f"execution {execution_id} ended {finished.status}")

    def stamp(event_type: str) -> float:
        return next(s.t for s in tap.of(execution_id, event_type) if s.node == "work")

    succeeded = stamp("NodeSucceeded")
    result = ms(succeeded - stamp("NodeStarted")), ms(succeeded - stamp("NodeReady"))
    tap.forget(execution_id)
    return result


async def in_process(runs: int) -> tuple[list[float], list[float]]:
    """(a sandbox doing nothing, a bare interpreter start) in ms, measured here."""
    node = CodeNode()
    sandbox: list[float] = []
    bare: list[float] = []
    for _ in range(runs):
        began = time.perf_counter()
        await node.run(NodeContext("bench", "work", 1), {"main": [{"i": 1}]}, {"source": SOURCE})
        sandbox.append(ms(time.perf_counter() - began))
        began = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            runner_interpreter(), "-I", "-S", "-c", "pass", env={}
        )
        await process.wait()
        bare.append(ms(time.perf_counter() - began))
    return sandbox, bare


async def run(bench: Bench) -> Outcome:
    if shutil.which("bwrap") is None:  # say so in the table rather than fail the whole run
        missing = Row(ID, "one `code` node vs one `set` node", "-", "not measured: no bwrap")
        return Outcome(rows=[missing])
    runs = 3 if bench.quick else 30
    running: dict[tuple[str, int], list[float]] = {(k, n): [] for k in KINDS for n in SIZES}
    claimed: dict[tuple[str, int], list[float]] = {(k, n): [] for k in KINDS for n in SIZES}
    bodies = {
        (kind, size): execution_body(workflow(kind), input=items(size))
        for kind in KINDS
        for size in SIZES
    }
    async with bench.stack("sc") as stack:
        api = stack.api()
        try:
            async with stack.tap("NodeReady", "NodeStarted", "NodeSucceeded") as tap:
                for body in bodies.values():  # warm-up, not counted
                    await one_run(api, tap, body)
                for _ in range(runs):  # interleaved: a drift of the machine hits all alike
                    for key, body in bodies.items():
                        run_ms, ready_ms = await one_run(api, tap, body)
                        running[key].append(run_ms)
                        claimed[key].append(ready_ms)
        finally:
            await api.close()
    sandbox, bare = await in_process(runs)
    outcome = Outcome()
    for size in SIZES:
        code, plain = running[("code", size)], running[("set", size)]
        overhead = percentile(code, 0.5) - percentile(plain, 0.5)
        outcome.metrics[f"code_{size}_p50_ms"] = percentile(code, 0.5)
        outcome.metrics[f"set_{size}_p50_ms"] = percentile(plain, 0.5)
        outcome.rows.append(
            Row(
                f"{ID}{'' if size == 1 else '+'}",
                f"one node, {size:,} item{'s' if size > 1 else ''}, `total = i * 2`, {runs} runs: "
                "`NodeStarted` → `NodeSucceeded` p50 / p95, `code` vs `set`",
                "(measured, no target)",
                f"`code` {fmt_ms(percentile(code, 0.5))} / {fmt_ms(percentile(code, 0.95))}; "
                f"`set` {fmt_ms(percentile(plain, 0.5))} / {fmt_ms(percentile(plain, 0.95))}; "
                f"the sandbox adds {fmt_ms(overhead)}",
            )
        )
    outcome.details += [
        "**SC**: `NodeReady` → `NodeSucceeded` p50 (with the runner's claim): "
        + "; ".join(
            f"{kind} {size:,}: {fmt_ms(percentile(claimed[(kind, size)], 0.5))}"
            for size in SIZES
            for kind in KINDS
        )
        + f". In the harness's process, {runs} runs: a `code` node on 1 item "
        f"p50 {fmt_ms(percentile(sandbox, 0.5))} (p95 {fmt_ms(percentile(sandbox, 0.95))}), "
        f"of which a bare `python -I -S -c pass` start is p50 {fmt_ms(percentile(bare, 0.5))}.",
        "",
    ]
    return outcome
