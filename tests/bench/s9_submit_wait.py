"""S9: submit-and-wait: one-node executions under open-loop load, the client learning each
outcome as a client would, from the answer of ``POST /api/executions?wait=``.

A request is due at a fixed time (``rate`` per second) whatever the system does; its latency runs
from its due time to the moment the client has read the 200 answer (the finished execution, as
GET shows it), so queueing in the generator, the api, the projection's linger and the notifier's
notice all count. A request answered 202 (its wait ran out) counts as an infinitely late sample.
The rate steps up until the system no longer keeps up; the highest rate answered in full with
p99 <= 100 ms is the *max sustained* rate. CPU per execution is the whole system's: every
service process, nats-server, PostgreSQL and the load generator, read from /proc around each
step (as ``tests.bench.cpu_cost`` does), divided by the executions answered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import httpx
from tests.bench import cpu_cost
from tests.bench.load import execution_body, open_loop
from tests.bench.s1_chain import chain
from tests.bench.stack import Bench, Stack
from tests.bench.stats import Outcome, Row, fmt_ms, ms, percentile, verdict
from tests.bench.tap import EventTap

ID = "S9"
TARGET_RATE = 300.0
TARGET_P99_MS = 100.0
#: From 25/s, as DBOS's steps start: a system that does not hold 100/s still gets a figure.
STEP_RATES = (25, 50, 100, 200, 300, 400, 500, 650, 800)
#: Long enough that a finished execution is always answered 200 under any load measured.
WAIT_S = 10
#: Requests in flight at most: at 800/s and 100 ms each, 80 are.
CONNECTIONS = 160
GIVE_UP_P99_MS = 2000.0
KEPT_UP = 0.95


@dataclass
class Step:
    rate: float
    duration_s: float
    sent: int
    answered: int  # 200s
    achieved: float
    p50_ms: float
    p99_ms: float
    #: From the scheduler's ExecutionFinished stamp to the client reading the answer: what
    #: learning the outcome through the api adds (the projection's commit, the notice, the read).
    learn_p50_ms: float
    learn_p99_ms: float
    #: From the due time to ExecutionFinished: what S3 measures, under the same load.
    end_p50_ms: float
    end_p99_ms: float
    cpu_ms: dict[str, float]

    @property
    def kept_up(self) -> bool:
        return self.answered == self.sent and self.achieved >= KEPT_UP * self.rate

    @property
    def sustained(self) -> bool:
        return self.kept_up and self.p99_ms <= TARGET_P99_MS

    @property
    def cpu_total_ms(self) -> float:
        return sum(v for k, v in self.cpu_ms.items() if not k.startswith(" "))

    def __str__(self) -> str:
        return (
            f"{self.rate:g}/s for {self.duration_s:g} s: {self.achieved:.0f}/s answered 200, "
            f"p50 {fmt_ms(self.p50_ms)}, p99 {fmt_ms(self.p99_ms)} (ExecutionFinished to "
            f"answer p50 {fmt_ms(self.learn_p50_ms)}, p99 {fmt_ms(self.learn_p99_ms)}), "
            f"{self.sent - self.answered} not answered 200, "
            f"CPU {self.cpu_total_ms:.1f} ms/execution"
        )


async def one_step(
    stack: Stack, tap: EventTap, postgres_pid: int, rate: float, duration_s: float
) -> Step:
    body = execution_body(chain(0))
    before = cpu_cost.snapshot(stack, postgres_pid)
    result = await open_loop(
        stack.system.api_port,
        stack.system.token,
        rate=rate,
        duration_s=duration_s,
        body=lambda _: body,
        connections=CONNECTIONS,
        path=f"/api/executions?wait={WAIT_S}",
    )
    await stack.settle()
    after = cpu_cost.snapshot(stack, postgres_pid)
    latencies = [
        ms(r.answered - r.scheduled) if r.status == 200 else math.inf for r in result.requests
    ]
    answered = sum(1 for r in result.requests if r.status == 200)
    learn, ends = [], []
    for r in result.requests:
        if r.execution_id:
            stamp = tap.done(r.execution_id)
            if stamp is not None and r.status == 200:
                learn.append(ms(r.answered - stamp.t))
                ends.append(ms(stamp.t - r.scheduled))
            tap.forget(r.execution_id)
    last = max((r.answered for r in result.requests if r.status == 200), default=result.start)
    return Step(
        rate=rate,
        duration_s=duration_s,
        sent=len(result.requests),
        answered=answered,
        achieved=answered / max(duration_s, last - result.start),
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        learn_p50_ms=percentile(learn, 0.5),
        learn_p99_ms=percentile(learn, 0.99),
        end_p50_ms=percentile(ends, 0.5),
        end_p99_ms=percentile(ends, 0.99),
        cpu_ms={k: 1000 * (after[k] - before[k]) / max(answered, 1) for k in before},
    )


def webhook_workflow(respond: str) -> dict[str, Any]:
    """Webhook in, response out, three nodes: the trigger, a ``set`` and the answer (a ``set``
    for ``when_finished``, a ``respond_to_webhook`` for ``via_node``)."""
    last: dict[str, Any] = (
        {"id": "answer", "type": "set", "parameters": {"values": {"ok": True}}}
        if respond == "when_finished"
        else {
            "id": "answer",
            "type": "respond_to_webhook",
            "parameters": {"body": {"total": "{{ item.total }}"}},
        }
    )
    return {
        "name": f"webhook {respond}",
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": {"respond": respond}},
            {"id": "total", "type": "set", "parameters": {"values": {"total": "{{ item.n * 2 }}"}}},
            last,
        ],
        "connections": [{"from": "hook", "to": "total"}, {"from": "total", "to": "answer"}],
    }


async def webhook_latencies(stack: Stack, respond: str, requests: int) -> list[float]:
    """Milliseconds from sending each webhook request to reading its whole answer, one
    request at a time (httpx: answers of ``when_finished`` are chunked)."""
    base = f"http://127.0.0.1:{stack.system.api_port}"
    headers = {"Authorization": f"Bearer {stack.system.token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        saved = await client.post("/api/workflows", json=webhook_workflow(respond))
        saved.raise_for_status()
        url = f"/webhooks/{saved.json()['id']}/hook"
        latencies = []
        for n in range(requests + 5):
            started = time.perf_counter()
            answer = await client.post(url, json={"n": n})
            took = ms(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"webhook {respond} answered {answer.status_code}")
            if n >= 5:  # the first few warm up
                latencies.append(took)
    return latencies


async def run(bench: Bench) -> Outcome:
    quick = bench.quick
    rates: tuple[float, ...] = (50.0,) if quick else STEP_RATES
    step_s = 2.0 if quick else 10.0
    postgres_pid = bench.postgres.pid
    assert postgres_pid is not None
    steps: list[Step] = []
    webhooks: dict[str, list[float]] = {}
    async with bench.stack("s9") as stack, stack.tap() as tap:
        await one_step(stack, tap, postgres_pid, 50, 1)  # warm-up
        for rate in rates:
            step = await one_step(stack, tap, postgres_pid, rate, step_s)
            steps.append(step)
            print(f"  S9 {step}", flush=True)
            if not step.kept_up or step.p99_ms > GIVE_UP_P99_MS:
                break
        for respond in ("when_finished", "via_node"):
            webhooks[respond] = await webhook_latencies(stack, respond, 20 if quick else 200)
    sustained = [s for s in steps if s.sustained]
    best = max(sustained, key=lambda s: s.rate) if sustained else None
    shown = best or steps[0]
    outcome = Outcome(
        metrics={
            "rate": best.rate if best else 0.0,
            "p99_ms": shown.p99_ms,
            "cpu_ms": shown.cpu_total_ms,
            "cpu_rate": shown.rate,
        }
    )
    outcome.rows.append(
        Row(
            ID,
            (
                f"submit-and-wait smoke: {rates[0]:g}/s for {step_s:g} s"
                if quick
                else "submit-and-wait (`POST ?wait=`), one-node executions, open loop, stepping "
                f"up the rate ({step_s:g} s a step), 1 runner: max sustained rate with p99 <= "
                f"{TARGET_P99_MS:g} ms (due time to the 200 answer read), whole-system CPU "
                "per execution there"
            ),
            f">= {TARGET_RATE:g}/s at p99 <= {TARGET_P99_MS:g} ms",
            (
                f"{best.rate:g}/s, p99 {fmt_ms(best.p99_ms)}, {best.cpu_total_ms:.1f} ms CPU"
                if best
                else f"< {steps[0].rate:g}/s (p99 {fmt_ms(steps[0].p99_ms)} at "
                f"{steps[0].rate:g}/s, {steps[0].cpu_total_ms:.1f} ms CPU)"
            ),
            "-" if quick else verdict(best.rate if best else 0.0, TARGET_RATE, higher=True),
        )
    )
    outcome.rows.append(
        Row(
            f"{ID}w",
            "webhook in, response out, 3 nodes (trigger, set, answer), one request at a time: "
            "`respond: when_finished` / `via_node`",
            "-",
            " / ".join(
                f"p50 {fmt_ms(percentile(v, 0.5))}, p99 {fmt_ms(percentile(v, 0.99))}"
                for v in webhooks.values()
            )
            + f" ({len(webhooks['via_node'])} requests each)",
        )
    )
    names = list(steps[0].cpu_ms)
    outcome.details += [
        "**S9** submit-and-wait steps (latency from each request's due time to the client "
        "reading the 200 answer; CPU in ms per execution answered, from /proc, whole system):",
        "",
        "| offered | answered 200 | p50 | p99 | due to ExecutionFinished p50 / p99 "
        "| finished to answer p50 / p99 | not 200 | "
        + " | ".join(n.strip() for n in names)
        + " | total CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for step in steps:
        outcome.details.append(
            f"| {step.rate:g}/s | {step.achieved:.0f}/s | {fmt_ms(step.p50_ms)} | "
            f"{fmt_ms(step.p99_ms)} | {fmt_ms(step.end_p50_ms)} / {fmt_ms(step.end_p99_ms)} | "
            f"{fmt_ms(step.learn_p50_ms)} / {fmt_ms(step.learn_p99_ms)} | "
            f"{step.sent - step.answered} | "
            + " | ".join(f"{step.cpu_ms[n]:.2f}" for n in names)
            + f" | {step.cpu_total_ms:.1f} |"
        )
    outcome.details.append("")
    return outcome
