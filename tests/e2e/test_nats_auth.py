"""``nodedrop up`` with NATS users: each service connects as itself and does all its work with
only its own permissions (nodedrop.platform.natsauth).

The evidence that no service needs more than it is given: the whole system does a varied round
of work (runs, events, the WebSocket, a run waited for, a webhook answered by a node, a large
output through the object store, a cancel, a schedule saved and removed), and the nats-server
log has not one permission violation.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest
from websockets.sync.client import connect as ws_connect

from nodedrop.platform import natsauth

from .test_cli import HELLO, Up, command_line, data_dir, descendants, make_up

__all__ = ["data_dir", "make_up"]  # fixtures, used by name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SERVICE_USERS = {
    "nodedrop.api": "api",
    "nodedrop.scheduler": "scheduler",
    "nodedrop.runner": "runner",
    "nodedrop.notifier": "notifier",
}


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def wait_finished(
    http: httpx.Client, execution_id: str, timeout_s: float = 30
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        execution: dict[str, Any] = http.get(f"/api/executions/{execution_id}").json()
        if execution["status"] not in ("queued", "running"):
            return execution
        time.sleep(0.1)
    pytest.fail(f"execution {execution_id} did not finish: {execution}")


def run(http: httpx.Client, body: dict[str, object]) -> str:
    answer = http.post("/api/executions", json=body)
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["id"]
    return execution_id


def wait_and_webhook(http: httpx.Client) -> None:
    """A run waited for, and a webhook answered by a node: the api's two subscriptions."""
    # Waiting: the notifier announces the end, the api's shared subscription hears it.
    waited = http.post("/api/executions", params={"wait": 30}, json={"workflow": HELLO}, timeout=30)
    assert waited.status_code == 200, waited.text
    # A webhook answered by a node: the api watches that execution's node results.
    hooked = {
        "name": "Hooked",
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": {"respond": "via_node"}},
            {"id": "ack", "type": "respond_to_webhook", "parameters": {"status": 201}},
        ],
        "connections": [{"from": "hook", "to": "ack"}],
    }
    saved_hook = http.post("/api/workflows", json=hooked)
    assert saved_hook.status_code == 201, saved_hook.text
    answer = http.post(f"/webhooks/{saved_hook.json()['id']}/hook", json={}, timeout=30)
    assert answer.status_code == 201, answer.text


def test_every_service_works_as_its_own_nats_user(make_up: Callable[[], Up]) -> None:
    up = make_up()
    up.start()
    up.wait_until_up()
    assert up.process is not None
    url, key = up.banner()

    # Credentials: generated once, private; the server's configuration names no password.
    credentials = up.data_dir / "nats_credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    passwords = json.loads(credentials.read_text())
    assert set(passwords) == set(natsauth.USERS)
    server_config = (up.data_dir / "nats" / "nats-server.conf").read_text()
    assert "authorization" in server_config
    assert not any(password in server_config for password in passwords.values())

    # Each service process runs as its own user.
    seen = set()
    for pid in descendants(up.process.pid):
        for module, user in SERVICE_USERS.items():
            if f"-m {module} " in f"{command_line(pid)} ":
                env = environment_of(pid)
                assert env[natsauth.USER_ENV] == user
                assert env[natsauth.PASSWORD_ENV] == passwords[user]
                seen.add(user)
    assert seen == set(natsauth.SERVICES), up.output()

    nats_url = f"nats://127.0.0.1:{up.env['NODEDROP_NATS_PORT']}"
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(nats.connect(nats_url, allow_reconnect=False))

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        # A run: api publishes, scheduler decides, runners execute, notifier projects.
        hello = run(http, {"workflow": HELLO})
        assert wait_finished(http, hello)["status"] == "succeeded"
        events = http.get(f"/api/executions/{hello}/events").json()["events"]  # history read
        assert events[-1]["type"] == "ExecutionFinished"
        ws_url = url.replace("http://", "ws://") + f"/ws/executions/{hello}?token={key}"
        with ws_connect(ws_url, open_timeout=10) as ws:  # the notifier's ordered consumer
            received = [json.loads(ws.recv(timeout=10)) for _ in events]
        assert [e["seq"] for e in received] == [e["seq"] for e in events]

        wait_and_webhook(http)

        # A large output: the runner stores it in the object store, the api reads it back.
        big = [{"text": "x" * 400_000}]
        large = run(http, {"workflow": HELLO, "input": big})
        assert wait_finished(http, large)["status"] == "succeeded"
        output = http.get(f"/api/executions/{large}/nodes/second/output")
        assert output.status_code == 200, output.text
        assert output.json()["main"] == big

        # A cancel: api records it, the scheduler stops the node, the runner is told.
        slow = {
            "name": "Slow",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "nap", "type": "wait", "parameters": {"ms": 30_000}},
            ],
            "connections": [{"from": "start", "to": "nap"}],
        }
        napping = run(http, {"workflow": slow})
        time.sleep(0.5)
        assert http.post(f"/api/executions/{napping}/cancel").status_code == 202
        assert wait_finished(http, napping)["status"] == "cancelled"

        # A schedule: the api writes it to the schedules bucket and removes it again.
        scheduled = {
            "name": "Nightly",
            "nodes": [
                {"id": "tick", "type": "schedule_trigger", "parameters": {"cron": "0 3 * * *"}}
            ],
            "connections": [],
        }
        saved = http.post("/api/workflows", json=scheduled)
        assert saved.status_code == 201, saved.text
        assert http.delete(f"/api/workflows/{saved.json()['id']}").status_code == 204

    log = (up.data_dir / "nats" / "nats-server.log").read_text()
    assert "Violation" not in "\n".join(
        line for line in log.splitlines() if "authentication error" not in line
    ), log[-3000:]
    assert up.stop() == 0, up.output()


def test_retention_prunes_as_the_notifier_and_admin_tools_connect_as_admin(
    make_up: Callable[[], Up],
) -> None:
    """The notifier's pruning job (events purge, data objects) under its own user; ``nodedrop
    prune`` finds the embedded server's admin password in the data directory."""
    up = make_up()
    up.env.update(NODEDROP_RETENTION_DAYS="0.00002", NODEDROP_PRUNE_INTERVAL_S="1")  # ~2 s
    up.start()
    up.wait_until_up()
    url, key = up.banner()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        large = run(http, {"workflow": HELLO, "input": [{"text": "x" * 400_000}]})
        assert wait_finished(http, large)["status"] == "succeeded"
        deadline = time.monotonic() + 60
        while http.get(f"/api/executions/{large}").status_code != 404:
            assert time.monotonic() < deadline, f"not pruned:\n{up.output()}"
            time.sleep(0.5)
        events = http.get(f"/api/executions/{large}/events")
        assert events.status_code == 404 or events.json()["events"] == []

    pruned = subprocess.run(
        [sys.executable, "-m", "nodedrop.cli", "prune", "--older-than", "1", "--dry-run"],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    log = (up.data_dir / "nats" / "nats-server.log").read_text()
    assert "Violation" not in log, log[-3000:]
    assert up.stop() == 0, up.output()
