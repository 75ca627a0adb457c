"""The S1, S4 and S9 workloads as DBOS workflows behind a small FastAPI app; run by the harness
with the Python of its own DBOS environment (``.bench/dbos-venv``), never imported by nodedrop.

    .bench/dbos-venv/bin/python tests/bench/dbos_app.py --port 8123 --database-url URL

DBOS checkpoints every workflow and every step in its system database, the PostgreSQL at
``--database-url`` (one committed row per step). The harness times each request from outside,
from sending it to reading the answer, which comes only once the workflow has finished:

- ``POST /chain?nodes=40``: one workflow of ``nodes`` sequential trivial ``@DBOS.step``s, each
  consuming the previous one's result;
- ``POST /fan?width=1000``: one workflow starting ``width`` trivial steps at once
  (``asyncio.gather``, no queue), then one joining step over their results;
- ``POST /api/executions``: a one-step workflow (S9's submit-and-wait), answering
  ``{"id": workflow id}`` as nodedrop's ``POST /api/executions?wait=`` does.

``/chain`` and ``/fan`` also answer the time inside the workflow (first step called -> last
result back), in seconds; ``GET /version`` answers once the app listens.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from typing import Any

# Not nodedrop dependencies: no types here.
dbos: Any = importlib.import_module("dbos")
fastapi: Any = importlib.import_module("fastapi")
uvicorn: Any = importlib.import_module("uvicorn")

DBOS = dbos.DBOS
app = fastapi.FastAPI()


async def _step(value: int) -> int:
    return value + 1


async def _join(values: list[int]) -> int:
    return sum(values)


# Registered by calling the decorators (they carry no types): the workflows call these.
step: Any = DBOS.step()(_step)
join: Any = DBOS.step()(_join)


async def _chain(nodes: int) -> float:
    started = time.perf_counter()
    value = 0
    for _ in range(nodes):
        value = await step(value)
    assert value == nodes
    return time.perf_counter() - started


async def _fan_out(width: int) -> float:
    started = time.perf_counter()
    values = await asyncio.gather(*(step(i) for i in range(width)))
    total = await join(list(values))
    assert total == width * (width + 1) // 2
    return time.perf_counter() - started


async def _one_step() -> int:
    value: int = await step(0)
    return value


chain: Any = DBOS.workflow()(_chain)
fan_out: Any = DBOS.workflow()(_fan_out)
one_step: Any = DBOS.workflow()(_one_step)


async def run_chain(nodes: int = 40) -> dict[str, Any]:
    handle = await DBOS.start_workflow_async(chain, nodes)
    return {"id": handle.get_workflow_id(), "inside_s": await handle.get_result()}


async def run_fan(width: int = 1000) -> dict[str, Any]:
    handle = await DBOS.start_workflow_async(fan_out, width)
    return {"id": handle.get_workflow_id(), "inside_s": await handle.get_result()}


async def submit_and_wait() -> dict[str, Any]:
    handle = await DBOS.start_workflow_async(one_step)
    await handle.get_result()
    return {"id": handle.get_workflow_id()}


async def version() -> dict[str, str]:
    return {"version": importlib.import_module("importlib.metadata").version("dbos")}


app.post("/chain")(run_chain)
app.post("/fan")(run_fan)
app.post("/api/executions")(submit_and_wait)
app.get("/version")(version)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    DBOS(config={"name": "nodedrop-bench", "system_database_url": args.database_url})
    DBOS.launch()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
