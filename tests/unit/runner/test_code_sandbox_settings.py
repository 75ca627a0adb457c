"""The code sandbox's settings, its seccomp program and a host without bubblewrap."""

from __future__ import annotations

import logging
import struct

import pytest

from nodedrop.platform.settings import SettingsError
from nodedrop.runner.main import report_code_sandbox
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.code import CodeNode
from nodedrop.runner.sandbox import seccomp
from nodedrop.runner.sandbox.jail import Jail
from nodedrop.runner.sandbox.settings import SandboxSettings
from nodedrop.runner.settings import RunnerSettings


def test_settings_default_to_bubblewrap_and_read_the_environment() -> None:
    assert RunnerSettings.from_env({}).code_sandbox_settings == SandboxSettings()
    settings = RunnerSettings.from_env(
        {
            "NODEDROP_CODE_SANDBOX": "process",
            "NODEDROP_CODE_ALLOWED_PACKAGES": " yaml, dateutil ,",
            "NODEDROP_CODE_MEMORY_MB": "128",
            "NODEDROP_CODE_CPU_S": "4",
            "NODEDROP_CODE_PYTHON": "/usr/bin/python3",
        }
    ).code_sandbox_settings
    assert settings.mode == "process"
    assert settings.allowed_packages == ("yaml", "dateutil")
    assert settings.memory_bytes == 128 * 1024 * 1024
    assert (settings.cpu_s, settings.wall_s) == (4, 12.0)
    assert settings.python == "/usr/bin/python3"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NODEDROP_CODE_SANDBOX", "none"),
        ("NODEDROP_CODE_ALLOWED_PACKAGES", "os.path"),
        ("NODEDROP_CODE_MEMORY_MB", "0"),
        ("NODEDROP_CODE_CPU_S", "1.5"),
    ],
)
def test_a_wrong_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        RunnerSettings.from_env({name: value})


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_seccomp_program_checks_the_architecture_first_and_ends_allowing(
    machine: str,
) -> None:
    program = seccomp.filter_program(machine)
    assert len(program) % 8 == 0
    instructions = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert instructions[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert instructions[2] == (0x06, 0, 0, 0x80000000)  # another ABI: kill
    assert instructions[-1] == (0x06, 0, 0, 0x7FFF0000)  # everything else: allow
    assert len(instructions) < 255  # classic BPF jumps are 8-bit


def test_an_unknown_architecture_has_no_program() -> None:
    assert not seccomp.supported("riscv64")


async def test_without_bubblewrap_the_node_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no prlimit
    node = CodeNode(SandboxSettings())
    with pytest.raises(NodeError) as info:
        await node.run(
            NodeContext("e1", "py", 1),
            {"main": [{}]},
            {"source": "def main(items, ctx):\n    return items\n"},
        )
    assert info.value.type == "CodeSandboxUnavailable"
    assert info.value.retryable is False
    assert "apt-get install bubblewrap" in info.value.message
    assert "NODEDROP_CODE_SANDBOX=process" in info.value.message


def test_a_runner_without_bubblewrap_starts_and_says_why_code_nodes_will_fail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="nodedrop.runner.main"):
        report_code_sandbox(Jail(SandboxSettings()))
    assert "CodeSandboxUnavailable" in caplog.text


def test_an_allowed_package_that_is_not_installed_stops_the_runner() -> None:
    jail = Jail(SandboxSettings(mode="process", allowed_packages=("no_such_package_here",)))
    with pytest.raises(ValueError, match="no_such_package_here"):
        report_code_sandbox(jail)
