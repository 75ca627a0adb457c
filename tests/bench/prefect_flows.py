"""The S1 and S4 workloads as Prefect 3 flows; run by the harness with the Python of its own
Prefect environment (``.bench/prefect-venv``), never imported by nodedrop.

    .bench/prefect-venv/bin/python tests/bench/prefect_flows.py --chain-runs 20 --fan-runs 3

Prefect runs with its local ephemeral server and SQLite (no ``PREFECT_API_URL``). Prints one JSON
object: per run, the time inside the flow (first task called -> last result back), the wall
clock around the whole flow call, and how long after that the server took to record every task
run as completed, in seconds.

- chain: ``nodes`` sequential trivial tasks, each consuming the previous one's result;
- fan-out: ``width`` trivial tasks submitted at once, their results gathered and passed to one
  joining task.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from typing import Any

prefect: Any = importlib.import_module("prefect")  # not a nodedrop dependency: no types here


def step(value: int) -> int:
    return value + 1


def join(values: list[int]) -> int:
    return sum(values)


step_task = prefect.task(step)
join_task = prefect.task(join)


def chain(nodes: int) -> float:
    started = time.perf_counter()
    value = 0
    for _ in range(nodes):
        value = step_task(value)
    assert value == nodes
    return time.perf_counter() - started


def fan_out(width: int) -> float:
    started = time.perf_counter()
    futures = [step_task.submit(i) for i in range(width)]
    total = join_task([future.result() for future in futures])
    assert total == width * (width + 1) // 2
    return time.perf_counter() - started


chain_flow = prefect.flow(name="chain")(chain)
fan_out_flow = prefect.flow(name="fan-out")(fan_out)


def completed_task_runs() -> int:
    orchestration = importlib.import_module("prefect.client.orchestration")
    with orchestration.get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/task_runs/count",
            json={"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}},
        )
        response.raise_for_status()
        return int(response.json())


class Runs:
    """Runs flows one after another. After each, waits until Prefect's server has recorded
    every task run as completed (it records them asynchronously), so that no run starts while
    the previous one's bookkeeping still loads the machine, as nodedrop's runs wait for the
    notifier's projection."""

    def __init__(self) -> None:
        self.recorded = 0

    def timed(self, flow: Any, size: int, tasks: int) -> tuple[float, float, float]:
        """(inside the flow, around the flow call, then until recorded), in seconds."""
        started = time.perf_counter()
        inside: float = flow(size)
        returned = time.perf_counter()
        self.recorded += tasks
        while completed_task_runs() < self.recorded:
            if time.perf_counter() - returned > 600:
                raise TimeoutError(f"Prefect has not recorded {self.recorded} task runs")
            time.sleep(0.1)
        return inside, returned - started, time.perf_counter() - returned


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain-nodes", type=int, default=40)
    parser.add_argument("--chain-runs", type=int, default=20)
    parser.add_argument("--fan-width", type=int, default=1000)
    parser.add_argument("--fan-runs", type=int, default=3)
    args = parser.parse_args()
    runs = Runs()
    runs.timed(chain_flow, args.chain_nodes, args.chain_nodes)  # warm-up: starts the server
    runs.timed(fan_out_flow, 10, 11)
    chains = [
        runs.timed(chain_flow, args.chain_nodes, args.chain_nodes) for _ in range(args.chain_runs)
    ]
    fans = [
        runs.timed(fan_out_flow, args.fan_width, args.fan_width + 1) for _ in range(args.fan_runs)
    ]
    result = {
        "version": prefect.__version__,
        "chain_nodes": args.chain_nodes,
        "chain_inside_s": [inside for inside, _, _ in chains],
        "chain_flow_s": [flow for _, flow, _ in chains],
        "chain_recorded_s": [recorded for _, _, recorded in chains],
        "fan_width": args.fan_width,
        "fan_inside_s": [inside for inside, _, _ in fans],
        "fan_flow_s": [flow for _, flow, _ in fans],
        "fan_recorded_s": [recorded for _, _, recorded in fans],
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
