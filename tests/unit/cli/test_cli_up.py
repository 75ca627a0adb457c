"""Pieces of ``nodedrop up`` that need no servers."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from nodedrop.cli import up


def _child(announces_ready: bool = False) -> tuple[up.Child, io.StringIO]:
    out = io.StringIO()
    console = up.Console(out, ["nodedrop", "api"], color=False)
    return up.Child("api", ["true"], {}, console, announces_ready=announces_ready), out


def test_output_is_split_into_prefixed_lines() -> None:
    child, out = _child()
    child.feed(b"one\ntw")
    child.feed(b"o\r\nthree")
    assert out.getvalue() == "api      | one\napi      | two\n"
    child.feed(b"")
    assert out.getvalue().endswith("api      | three\n")
    assert child.output_closed


def test_the_ready_line_is_taken_not_printed() -> None:
    child, out = _child(announces_ready=True)
    child.feed(b'starting\nREADY {"nats_url": "nats://x:1", "pids": [1]}\n')
    assert child.ready_info == {"nats_url": "nats://x:1", "pids": [1]}
    assert "READY" not in out.getvalue()


def test_plan_from_environment(tmp_path: Path) -> None:
    plan = up.Plan.from_env(
        {
            "NODEDROP_DATA_DIR": str(tmp_path),
            "NODEDROP_PORT": "9000",
            "NODEDROP_HOST": "0.0.0.0",
            "NODEDROP_NATS_URL": "nats://elsewhere:4222",
        },
        runners=3,
    )
    assert plan.data_dir == tmp_path
    assert plan.base_url == "http://127.0.0.1:9000"
    assert plan.nats_url == "nats://elsewhere:4222"
    assert plan.database_url is None
    assert (plan.nats_port, plan.pg_port, plan.notifier_port) == (4250, 5440, 8001)
    assert plan.service_names() == [
        "api",
        "notifier",
        "scheduler",
        "runner-1",
        "runner-2",
        "runner-3",
    ]


def test_client_host() -> None:
    assert up.client_host("0.0.0.0") == "127.0.0.1"
    assert up.client_host("::") == "[::1]"
    assert up.client_host("::1") == "[::1]"
    assert up.client_host("localhost") == "localhost"


def test_port_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not up.port_free("127.0.0.1", port)


def test_a_second_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(up.UpError, match="another `nodedrop up`")
    # flock locks belong to the open file: a second open in this process conflicts too.
    with up.data_dir_lock(tmp_path), refused, up.data_dir_lock(tmp_path):
        pass
    with up.data_dir_lock(tmp_path):
        pass


def test_ops_port_gives_the_scheduler_and_each_runner_a_port_of_its_own() -> None:
    names = ["api", "notifier", "scheduler", "runner-1", "runner-2"]
    assert up.ops_ports("9100", names) == {"scheduler": 9100, "runner-1": 9101, "runner-2": 9102}
    assert up.ops_ports(None, names) == {}
    assert up.ops_ports("0", names) == {}  # any free port, each: nothing to share out


def test_a_busy_ops_port_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        monkeypatch.setenv("NODEDROP_OPS_PORT", str(busy - 1))  # the runner's: busy + 0
        others = {  # servers of their own: only the services' ports are checked
            "NODEDROP_DATA_DIR": str(tmp_path),
            "NODEDROP_NATS_URL": "nats://127.0.0.1:1",
            "NODEDROP_DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
            "NODEDROP_PORT": str(_free_port()),
            "NODEDROP_NOTIFIER_PORT": str(_free_port()),
        }
        plan = up.Plan.from_env(others, runners=1)
        with pytest.raises(up.UpError, match=rf"{busy} \(NODEDROP_OPS_PORT \(runner\)\)"):
            up.Up(plan, stop_timeout=1, out=io.StringIO())._check_ports()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("out", "given", "shows_key"),
    [(_Terminal(), None, True), (io.StringIO(), None, False), (_Terminal(), "from-env", False)],
    ids=["terminal", "file", "given-in-env"],
)
def test_the_banner_shows_the_admin_key_only_on_a_terminal(
    tmp_path: Path, out: io.StringIO, given: str | None, shows_key: bool
) -> None:
    env = {"NODEDROP_DATA_DIR": str(tmp_path), **({"NODEDROP_ADMIN_TOKEN": given} if given else {})}
    started = up.Up(up.Plan.from_env(env, runners=1), stop_timeout=1, out=out)
    token = started._admin_token()
    started._banner(token, 1.0)
    banner = out.getvalue()
    assert (token in banner) is shows_key
    if given:
        assert "admin key: as given in NODEDROP_ADMIN_TOKEN" in banner
        assert 'Bearer $NODEDROP_ADMIN_TOKEN"' in banner
    elif not shows_key:
        assert f"admin key: in {tmp_path / 'admin_token'}" in banner
        assert f'Bearer $(cat {tmp_path / "admin_token"})"' in banner
