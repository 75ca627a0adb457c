"""The pieces of process isolation that need no process: the protocol, the worker's handling of
a call (run here, in-process), error mapping and the settings."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any, ClassVar

import msgspec
import pytest

from nodedrop.contracts.events import ErrorInfo
from nodedrop.contracts.nodetypes import NodeTypeSpec
from nodedrop.runner import isolated_worker
from nodedrop.runner.attempt import MAX_STACK_CHARS, error_info
from nodedrop.runner.isolated_worker import Plugins, load
from nodedrop.runner.isolation import (
    HEADER,
    Call,
    ProcessPool,
    Ready,
    RemoteNodeError,
    Reply,
    describe_exit,
    encode_frame,
    worker_environment,
)
from nodedrop.runner.nodes import NodeContext, NodeError
from nodedrop.runner.settings import RunnerSettings
from nodedrop.runner.worker import default_processes

CTX = NodeContext("exec-1", "n1", 2, "start")
HERE = __name__


class Counting:
    spec: ClassVar[NodeTypeSpec] = NodeTypeSpec("counting", "Counting", "action")
    instances = 0

    def __init__(self) -> None:
        type(self).instances += 1

    def run(self, ctx: NodeContext, node_input: dict[str, Any], parameters: Any) -> Any:
        return {"main": [{"node": ctx.node, "attempt": ctx.attempt, **parameters}]}


class AsyncOne:
    async def run(self, ctx: NodeContext, node_input: dict[str, Any], parameters: Any) -> Any:
        await asyncio.sleep(0)
        return {"main": node_input["main"]}


class Failing:
    def run(self, ctx: NodeContext, node_input: dict[str, Any], parameters: Any) -> Any:
        if parameters.get("node_error"):
            raise NodeError("Refused", "no", retryable=False)
        raise KeyError("missing")


class Returning:
    def run(self, ctx: NodeContext, node_input: dict[str, Any], parameters: Any) -> Any:
        return parameters["value"]


def call(cls: type, **fields: Any) -> Call:
    return Call(
        target=f"{HERE}:{cls.__qualname__}",
        ctx=CTX,
        input=fields.pop("input", {"main": [{"a": 1}]}),
        parameters=fields.pop("parameters", {}),
        **fields,
    )


def test_a_call_crosses_as_one_length_prefixed_json_frame() -> None:
    frame = encode_frame(call(Counting, parameters={"p": [1, None]}))
    (size,) = HEADER.unpack(frame[: HEADER.size])
    assert size == len(frame) - HEADER.size
    decoded = msgspec.json.decode(frame[HEADER.size :], type=Call)
    assert decoded.ctx == CTX
    assert decoded.parameters == {"p": [1, None]}
    assert decoded.max_output_bytes is None


def test_frames_survive_a_pipe_in_pieces() -> None:
    read_end, write_end = os.pipe()
    try:
        isolated_worker._write(write_end, Ready(pid=7, broken={"m:C": "boom"}))
        isolated_worker._write(write_end, Ready(pid=8))
        os.close(write_end)
        ready = msgspec.json.Decoder(Ready)
        assert isolated_worker._read(read_end, ready) == Ready(pid=7, broken={"m:C": "boom"})
        assert isolated_worker._read(read_end, ready) == Ready(pid=8)
        assert isolated_worker._read(read_end, ready) is None  # end of file between frames
    finally:
        os.close(read_end)


def test_end_of_file_inside_a_frame_is_an_error() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, encode_frame(Ready(pid=1))[:-2])
        os.close(write_end)
        with pytest.raises(EOFError):
            isolated_worker._read(read_end, msgspec.json.Decoder(Ready))
    finally:
        os.close(read_end)


def test_the_worker_loads_classes_by_import_path() -> None:
    assert load(f"{HERE}:Counting") is Counting
    assert load("os.path:join") is os.path.join
    assert load("os") is os
    with pytest.raises(ModuleNotFoundError):
        load("no_such_module_here:X")


def test_the_worker_instantiates_a_class_once() -> None:
    plugins = Plugins()
    before = Counting.instances
    for attempt in range(3):
        reply = plugins.handle(call(Counting, parameters={"i": attempt}))
        assert reply == Reply(output={"main": [{"node": "n1", "attempt": 2, "i": attempt}]})
    assert Counting.instances == before + 1


def test_the_worker_runs_async_nodes_on_its_own_loop() -> None:
    plugins = Plugins()
    try:
        assert plugins.handle(call(AsyncOne)) == Reply(output={"main": [{"a": 1}]})
        assert plugins.handle(call(AsyncOne)) == Reply(output={"main": [{"a": 1}]})
    finally:
        plugins.close()


def test_the_worker_reports_errors_with_type_message_and_stack() -> None:
    reply = Plugins().handle(call(Failing))
    assert reply.output is None
    assert reply.error is not None
    assert (reply.error.type, reply.error.message, reply.error.retryable) == (
        "KeyError",
        "'missing'",
        True,
    )
    assert reply.error.stack is not None
    assert "in run" in reply.error.stack
    refused = Plugins().handle(call(Failing, parameters={"node_error": True})).error
    assert refused is not None
    assert (refused.type, refused.retryable) == ("Refused", False)


def test_a_class_that_does_not_load_is_the_attempts_error() -> None:
    plugins = Plugins()
    reply = plugins.handle(Call(target="no_such_module_here:X", ctx=CTX, input={}, parameters={}))
    assert reply.error is not None
    assert reply.error.type == "ModuleNotFoundError"
    problem = plugins.preload("no_such_module_here:X")
    assert problem is not None
    assert "ModuleNotFoundError" in problem
    assert plugins.preload(f"{HERE}:Counting") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "not str"),
        ([{"a": 1}], "not list"),
        ({"main": [1]}, "must be a JSON object"),
        ({"main": [{"a": 1j}]}, "not JSON"),
    ],
)
def test_the_worker_checks_the_output_before_it_crosses(value: Any, expected: str) -> None:
    reply = Plugins().handle(call(Returning, parameters={"value": value}))
    assert reply.error is not None
    assert (reply.error.type, reply.error.retryable) == ("InvalidOutput", False)
    assert expected in reply.error.message


def test_the_worker_applies_the_output_limit() -> None:
    value = {"main": [{"blob": "x" * 1_000}]}
    fits = Plugins().handle(call(Returning, parameters={"value": value}, max_output_bytes=2_000))
    assert fits.output == value
    reply = Plugins().handle(call(Returning, parameters={"value": value}, max_output_bytes=500))
    assert reply.error is not None
    assert reply.error.type == "InvalidOutput"


def test_a_remote_error_keeps_its_stack_from_over_there() -> None:
    info = ErrorInfo(type="ValueError", message="bad", stack="Traceback ...remote", retryable=True)
    assert error_info(RemoteNodeError.from_info(info)) == info
    long = error_info(RemoteNodeError("E", "m", stack="x" * (MAX_STACK_CHARS + 10)))
    assert long.stack is not None
    assert len(long.stack) == MAX_STACK_CHARS
    crashed = error_info(RemoteNodeError("WorkerCrashed", "gone"))
    assert (crashed.type, crashed.stack, crashed.retryable) == ("WorkerCrashed", None, True)


def test_exit_statuses_are_described() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert describe_exit(-200) == "was killed by signal 200"
    assert describe_exit(None) == "stopped answering"


def test_workers_get_the_runners_path_but_not_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODEDROP_NATS_URL", "nats://user:secret@host:4222")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    monkeypatch.setattr("sys.path", ["", "/a", "/b"])
    env = worker_environment()
    assert "NODEDROP_NATS_URL" not in env
    assert env["SOMETHING_ELSE"] == "kept"
    assert env["PYTHONPATH"].split(os.pathsep) == [os.getcwd(), "/a", "/b"]


def test_pool_size() -> None:
    assert default_processes(64) == 4
    assert default_processes(2) == 2
    with pytest.raises(ValueError, match="at least one"):
        ProcessPool(0)


def test_process_settings_from_the_environment() -> None:
    default = RunnerSettings.from_env({})
    assert (default.runner_processes, default.process_memory_limit_bytes) == (None, None)
    options = RunnerSettings.from_env(
        {"NODEDROP_RUNNER_PROCESSES": "8", "NODEDROP_RUNNER_PROCESS_MEMORY_MB": "512"}
    )
    assert (options.runner_processes, options.process_memory_limit_bytes) == (8, 512 << 20)
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match="NODEDROP_RUNNER_PROCESSES"):
            RunnerSettings.from_env({"NODEDROP_RUNNER_PROCESSES": bad})
