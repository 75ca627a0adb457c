"""What long-polls cost the api: ``GET /api/executions/{id}?wait=`` held by many clients on one
running execution, then all answered by its one end.

``python -m tests.bench.many_waiters [--waiters 1000]``

Reports the api's resident memory per waiting request, its CPU while they wait (nothing should
poll), its CPU to take each long-poll, and from the cancel that ends the execution: when the
end was recorded, when the notifier announced it, and when the answers were read. The clients
are bare asyncio connections (an httpx client's own CPU for 1,000 connections measured the
client, not the api).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from tests.bench import cpu_cost
from tests.bench.stack import Bench

HOLD_S = 5.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError("no VmRSS")


async def long_poll(port: int, token: str, execution_id: str) -> tuple[float, dict[str, Any]]:
    """``(time the answer was read, its body)``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /api/executions/{execution_id}?wait=50 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        body = json.loads(await reader.readexactly(length))
        return time.perf_counter(), body
    finally:
        writer.close()


async def measure(waiters: int) -> None:
    bench = Bench(quick=True)
    bench.start()
    try:
        async with bench.stack("many-waiters") as stack:
            api, port, token = stack.pid("api"), stack.system.api_port, stack.system.token
            workflow = {
                "name": "waits",
                "nodes": [
                    {"id": "start", "type": "manual_trigger"},
                    {"id": "w", "type": "wait", "parameters": {"ms": 600_000}},
                ],
                "connections": [{"from": "start", "to": "w"}],
            }
            connection = stack.api()
            _, accepted = await connection.post(
                "/api/executions", json.dumps({"workflow": workflow}).encode()
            )
            execution_id = accepted["id"]
            marks: dict[str, float] = {}

            async def noticed(msg: Msg) -> None:
                marks.setdefault("notice", time.perf_counter())

            async def ended(msg: Msg) -> None:
                marks.setdefault("end", time.perf_counter())

            await stack.nc.subscribe("nodedrop.projected.finished.*", cb=noticed)
            await stack.nc.subscribe(f"nodedrop.log.*.{execution_id}.ExecutionFinished", cb=ended)
            await asyncio.sleep(1)
            rss_before, cpu_before = rss_mb(api), cpu_cost.cpu_seconds(api)
            polls = [
                asyncio.create_task(long_poll(port, token, execution_id)) for _ in range(waiters)
            ]
            await asyncio.sleep(2 + waiters / 250)  # every long-poll taken
            rss_held, cpu_held = rss_mb(api), cpu_cost.cpu_seconds(api)
            await asyncio.sleep(HOLD_S)
            cpu_waited = cpu_cost.cpu_seconds(api)
            cancelled = time.perf_counter()
            await connection.post(f"/api/executions/{execution_id}/cancel", b"")
            answers = await asyncio.gather(*polls)
            cpu_answered = cpu_cost.cpu_seconds(api)
            await connection.close()
    finally:
        bench.close()
    read = sorted(at for at, _ in answers)
    notice = marks.get("notice", cancelled)

    def after(t: float) -> str:
        return f"{(t - notice) * 1000:.0f} ms"

    print(
        f"{waiters} long-polls, statuses {sorted({b['status'] for b in (a for _, a in answers)})}"
    )
    print(f"api RSS {rss_before:.1f} MB -> {rss_held:.1f} MB: "
          f"{(rss_held - rss_before) * 1024 / waiters:.1f} KiB per waiting request")  # fmt: skip
    print(f"api CPU to take each long-poll: {1000 * (cpu_held - cpu_before) / waiters:.2f} ms")
    print(f"api CPU while they wait {HOLD_S:g} s: {1000 * (cpu_waited - cpu_held):.0f} ms")
    print(f"cancel -> end recorded {1000 * (marks.get('end', cancelled) - cancelled):.0f} ms, "
          f"-> notice {1000 * (notice - cancelled):.0f} ms")  # fmt: skip
    print(f"notice -> answers read: first {after(read[0])}, median {after(read[len(read) // 2])}, "
          f"last {after(read[-1])}")  # fmt: skip
    print(f"api CPU to answer them all: {1000 * (cpu_answered - cpu_waited):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=1000)
    asyncio.run(measure(parser.parse_args().waiters))


if __name__ == "__main__":
    main()
