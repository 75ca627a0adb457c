"""The side-by-side table: nodedrop, DBOS, Prefect and n8n on the same workloads (S1, S4, S9), each
figure timed from outside (request sent -> the client learning the run finished), with the
durability each one's default gives written next to its figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tests.bench import n8n_install
from tests.bench.peer_dbos import DbosResult
from tests.bench.peer_n8n import DURABILITY as N8N_DURABILITY
from tests.bench.peer_n8n import N8nResult
from tests.bench.peer_prefect import PrefectResult
from tests.bench.peer_rates import RateStep, best_sustained
from tests.bench.s9_submit_wait import TARGET_P99_MS
from tests.bench.stats import Outcome, fmt_ms, median

DURABILITY = {
    "nodedrop": "every event in JetStream (fsync always) and the projection in PostgreSQL",
    "DBOS": "one committed PostgreSQL row per step, synchronous_commit on",
    "Prefect": "task runs recorded by its server in SQLite, asynchronously after they ran",
    "n8n": N8N_DURABILITY,
}


def _ratio(peer: float | None, ours: float | None, higher_is_better: bool = False) -> str:
    if not peer or not ours:
        return "-"
    return f"{(ours / peer if higher_is_better else peer / ours):.1f}x"


def _s9_ratio(s9: Outcome, dbos: DbosResult, rate_ratio: str) -> str:
    """The sustained rates' ratio, and DBOS's CPU per execution over nodedrop's at the rate
    nodedrop's figure was taken, where DBOS ran that rate too."""
    parts = [f"rate {rate_ratio}"] if rate_ratio != "-" else []
    same = [s for s in dbos.submit_steps if s.rate == s9.metrics.get("cpu_rate")]
    if same and s9.metrics.get("cpu_ms"):
        parts.append(f"CPU at {same[0].rate:g}/s {_ratio(same[0].cpu_ms, s9.metrics['cpu_ms'])}")
    return "; ".join(parts) or "-"


Cells = dict[str, tuple[str, float | None]]


def _unmeasured(error: str, failed: dict[str, str]) -> Cells:
    if error:
        return dict.fromkeys(("S1", "S4", "S9"), (f"not measured: {error}", None))
    return {workload: (f"not measured: {why}", None) for workload, why in failed.items()}


def _submit_cell(steps: list[RateStep]) -> tuple[str, float | None]:
    best = best_sustained(steps, TARGET_P99_MS)
    first = steps[0]
    return (
        (
            f"{best.rate:g}/s, p99 {fmt_ms(best.p99_ms)}, {best.cpu_ms:.1f} ms CPU"
            if best
            else f"< {first.rate:g}/s (p99 {fmt_ms(first.p99_ms)}, {first.cpu_ms:.1f} ms CPU)"
        ),
        best.rate if best else 0.0,
    )


class PeerRuns(Protocol):
    """What DBOS and n8n both measure, each timed from outside."""

    error: str
    failed: dict[str, str]
    chain_nodes: int
    chain_whole_ms: list[float]
    fan_whole_ms: list[float]
    submit_steps: list[RateStep]


def _peer_cells(
    peer: PeerRuns, chain_note: str, fan_cell: Callable[[float, str], tuple[str, float | None]]
) -> Cells:
    """Per workload: (what the peer did, the number compared with nodedrop's). ``chain_note``
    follows its per-step figure; ``fan_cell`` makes S4's cell of the median and the runs."""
    cells = _unmeasured(peer.error, peer.failed)
    if peer.error:
        return cells
    if peer.chain_whole_ms:
        whole = median(peer.chain_whole_ms)
        cells["S1"] = (
            f"{fmt_ms(whole)} ({fmt_ms(whole / peer.chain_nodes)} per step{chain_note}), "
            f"{len(peer.chain_whole_ms)} runs",
            whole,
        )
    if peer.fan_whole_ms:
        runs = ", ".join(fmt_ms(v) for v in peer.fan_whole_ms)
        cells["S4"] = fan_cell(median(peer.fan_whole_ms), runs)
    if peer.submit_steps:
        cells["S9"] = _submit_cell(peer.submit_steps)
    return cells


def dbos_cells(dbos: DbosResult | None) -> Cells:
    if dbos is None:
        return {}
    inside = ""
    if dbos.chain_inside_ms:
        per_step = median(dbos.chain_inside_ms) / dbos.chain_nodes
        inside = f"; inside the workflow {fmt_ms(per_step)} per step"
    return _peer_cells(
        dbos,
        inside,
        lambda whole, runs: (f"{fmt_ms(whole)} (gathered steps, no queue; runs {runs})", whole),
    )


def n8n_cells(n8n: N8nResult | None) -> Cells:
    if n8n is None:
        return {}
    # n8n has no parallel branches: its S4 is items through one node, shown but not compared.
    return _peer_cells(
        n8n,
        ", kept in memory",
        lambda whole, runs: (
            f"{fmt_ms(whole)}: no parallel branches; {n8n.fan_width:,} items through one node "
            f"(Split Out, No Op, Aggregate), not comparable; runs {runs}",
            None,
        ),
    )


def prefect_cells(prefect: PrefectResult | None) -> dict[str, tuple[str, float | None]]:
    if prefect is None:
        return {}
    if prefect.error:
        return dict.fromkeys(("S1", "S4"), (f"not measured: {prefect.error}", None))
    cells: dict[str, tuple[str, float | None]] = {}
    if prefect.chain_flow_s:
        whole = median(prefect.chain_flow_s) * 1000
        per_task = whole / prefect.chain_nodes
        cells["S1"] = (f"{fmt_ms(whole)} ({fmt_ms(per_task)} per task), the flow call", whole)
    if prefect.fan_flow_s:
        whole = median(prefect.fan_flow_s) * 1000
        cells["S4"] = (f"{fmt_ms(whole)}, the flow call", whole)
    return cells


def table(
    outcomes: dict[str, Outcome],
    dbos: DbosResult | None,
    prefect: PrefectResult | None,
    n8n: N8nResult | None = None,
) -> list[str]:
    """Markdown lines; empty when no peer ran or no workload they share was measured."""
    if dbos is None and prefect is None and n8n is None:
        return []
    ours: dict[str, tuple[str, float | None]] = {}
    if (s1 := outcomes.get("S1")) and "e2e_ms" in s1.metrics:
        whole = s1.metrics["e2e_ms"]
        ours["S1"] = (f"{fmt_ms(whole)} ({fmt_ms(s1.metrics['p50_ms'])} per node)", whole)
    if (s4 := outcomes.get("S4")) and "e2e_ms" in s4.metrics:
        ours["S4"] = (fmt_ms(s4.metrics["e2e_ms"]), s4.metrics["e2e_ms"])
    if (s9 := outcomes.get("S9")) and "rate" in s9.metrics and s9.rows:
        ours["S9"] = (s9.rows[0].result, s9.metrics["rate"])
    if not ours:
        return []
    peers = {"DBOS": dbos_cells(dbos), "Prefect": prefect_cells(prefect)}
    if n8n is not None:
        peers["n8n"] = n8n_cells(n8n)
    workloads = {
        "S1": "40 trivial steps in a chain: whole run p50 (per step)",
        "S4": "1,000-way fan-out plus join: whole run p50",
        "S9": f"1-step submit-and-wait, open loop: highest rate with p99 <= "
        f"{TARGET_P99_MS:g} ms, whole-system CPU per execution there",
    }
    lines = [
        "### Side by side",
        "",
        "Each timed from outside: from the client's request to the client learning that the "
        "run finished. A ratio above 1x means nodedrop is ahead.",
        "",
        "| work | nodedrop | " + " | ".join(f"{name} | {name} ÷ nodedrop" for name in peers) + " |",
        "|---|---|" + "---|---:|" * len(peers),
    ]
    for workload, title in workloads.items():
        if workload not in ours:
            continue
        text, value = ours[workload]
        row = [title, text]
        for name, peer in peers.items():
            peer_text, peer_value = peer.get(workload, ("-", None))
            ratio = _ratio(peer_value, value, higher_is_better=workload == "S9")
            if workload == "S9" and name == "DBOS" and dbos is not None:
                ratio = _s9_ratio(outcomes["S9"], dbos, ratio)
            row += [peer_text, ratio]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    durability = ["durability of the default", DURABILITY["nodedrop"]]
    for name in peers:
        durability += [DURABILITY[name], ""]
    lines += ["| " + " | ".join(durability) + " |", ""]
    return lines


def dbos_details(dbos: DbosResult | None) -> list[str]:
    """DBOS's runs and its S9 steps, under the harness's details."""
    if dbos is None or dbos.error:
        return [f"**DBOS**: not measured: {dbos.error}", ""] if dbos else []

    def runs(label: str, values: list[float]) -> str:
        return f" {label}: {', '.join(fmt_ms(v) for v in values)}." if values else ""

    lines = [
        f"**DBOS {dbos.version}** (`.bench/dbos-venv`, a FastAPI app on 127.0.0.1, its system "
        "database a database of its own on the bench's PostgreSQL, each workload run right "
        "after nodedrop's)."
        + runs(f"{dbos.chain_nodes}-step chain, each run from outside", dbos.chain_whole_ms)
        + runs(f"Fan-out to {dbos.fan_width:,} and join, inside the workflow", dbos.fan_inside_ms),
        "",
    ]
    if dbos.submit_steps:
        lines += _steps_table("DBOS", dbos.submit_steps)
    return lines


def _steps_table(name: str, steps: list[RateStep]) -> list[str]:
    return [
        f"{name} submit-and-wait steps (open loop, latency from each request's due time to the "
        f"answer read; CPU of {name}, its database and the load generator per run):",
        "",
        "| offered | answered | p50 | p99 | not answered | CPU ms |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {s.rate:g}/s | {s.achieved:.0f}/s | {fmt_ms(s.p50_ms)} | {fmt_ms(s.p99_ms)} "
            f"| {s.sent - s.answered} | {s.cpu_ms:.1f} |"
            for s in steps
        ),
        "",
    ]


def n8n_details(n8n: N8nResult | None) -> list[str]:
    """n8n's runs and its S9 steps, under the harness's details."""
    if n8n is None or n8n.error:
        return [f"**n8n**: not measured: {n8n.error}", ""] if n8n else []
    lines = [
        f"**n8n {n8n.version}** (`.bench/n8n`, on the Node.js 24 npm packages as "
        f"`{n8n_install.node_package()}`, its defaults: SQLite in a fresh data folder; each "
        "workflow behind a webhook answering when its last node has run; each workload run "
        "right after DBOS's). Durability: "
        f"{N8N_DURABILITY}.",
        "",
    ]
    if n8n.chain_whole_ms:
        lines += [
            f"n8n {n8n.chain_nodes}-step chain, each run from outside: "
            + ", ".join(fmt_ms(v) for v in n8n.chain_whole_ms)
            + ".",
            "",
        ]
    if n8n.submit_steps:
        lines += _steps_table("n8n", n8n.submit_steps)
    return lines
