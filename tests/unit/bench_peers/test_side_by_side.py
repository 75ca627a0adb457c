"""The side-by-side table reads the peers' results as the harness gathers them."""

from __future__ import annotations

from tests.bench import side_by_side
from tests.bench.peer_dbos import DbosResult
from tests.bench.peer_prefect import PrefectResult
from tests.bench.peer_rates import RateStep
from tests.bench.stats import Outcome, Row


def _outcomes() -> dict[str, Outcome]:
    return {
        "S1": Outcome(metrics={"p50_ms": 4.0, "p95_ms": 6.0, "e2e_ms": 200.0}),
        "S4": Outcome(metrics={"total_ms": 1500.0, "e2e_ms": 2000.0}),
        "S9": Outcome(
            rows=[Row("S9", "submit-and-wait", "", "100/s, p99 80.0 ms, 12.0 ms CPU")],
            metrics={"rate": 100.0, "p99_ms": 80.0, "cpu_ms": 12.0, "cpu_rate": 100.0},
        ),
    }


def _step(rate: float, p99_ms: float, answered: int | None = None) -> RateStep:
    sent = int(rate * 10)
    return RateStep(
        rate=rate,
        sent=sent,
        answered=sent if answered is None else answered,
        achieved=rate,
        p50_ms=p99_ms / 2,
        p99_ms=p99_ms,
        cpu_ms=18.0,
    )


def _row(lines: list[str], start: str) -> list[str]:
    [line] = [line for line in lines if line.startswith(f"| {start}")]
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_dbos_ratios_are_its_time_over_nodedrops_and_nodedrops_rate_over_its() -> None:
    dbos = DbosResult(
        version="3.4.0",
        chain_nodes=40,
        chain_whole_ms=[300.0, 400.0, 500.0],
        chain_inside_ms=[280.0, 380.0, 480.0],
        fan_whole_ms=[6000.0],
        fan_inside_ms=[5900.0],
        submit_steps=[_step(25, 30.0), _step(50, 90.0), _step(100, 400.0)],
    )
    lines = side_by_side.table(_outcomes(), dbos, None)
    chain = _row(lines, "40 trivial")
    assert chain[2].startswith("400.0 ms (10.0 ms per step")
    assert chain[3] == "2.0x"
    assert _row(lines, "1,000-way")[3] == "3.0x"
    submit = _row(lines, "1-step")
    # DBOS kept p99 <= 100 ms up to 50/s, nodedrop to 100/s; at 100/s DBOS took 18 ms of CPU
    # per execution against nodedrop's 12.
    assert submit[1] == "100/s, p99 80.0 ms, 12.0 ms CPU"
    assert submit[2].startswith("50/s, p99 90.0 ms")
    assert submit[3] == "rate 2.0x; CPU at 100/s 1.5x"


def test_a_rate_not_answered_in_full_is_not_sustained() -> None:
    dbos = DbosResult(submit_steps=[_step(25, 30.0, answered=200)])
    assert dbos.best_sustained(100.0) is None
    assert _row(side_by_side.table(_outcomes(), dbos, None), "1-step")[2].startswith("< 25/s")


def test_a_peer_that_could_not_run_says_why_and_others_still_show() -> None:
    dbos = DbosResult(error="installation failed: no network")
    prefect = PrefectResult(version="3.1", chain_nodes=40, chain_flow_s=[0.8], fan_flow_s=[4.0])
    lines = side_by_side.table(_outcomes(), dbos, prefect)
    chain = _row(lines, "40 trivial")
    assert chain[2] == "not measured: installation failed: no network"
    assert chain[3] == "-"
    assert chain[4].startswith("800.0 ms (20.0 ms per task)")
    assert chain[5] == "4.0x"


def test_one_failed_dbos_workload_leaves_the_others_measured() -> None:
    dbos = DbosResult(chain_whole_ms=[400.0], chain_inside_ms=[390.0], failed={"S4": "boom"})
    lines = side_by_side.table(_outcomes(), dbos, None)
    assert _row(lines, "1,000-way")[2] == "not measured: boom"
    assert _row(lines, "40 trivial")[3] == "2.0x"


def test_no_peer_no_table() -> None:
    assert side_by_side.table(_outcomes(), None, None) == []
