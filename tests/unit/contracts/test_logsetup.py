"""Logs: URL user info and query values never reach a line; lines are text or JSON and carry
the execution, node and attempt a task is working on."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from nodedrop.platform.logsetup import bind, formatter, install_redaction, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET http://u:pw-SECRET@host/x?api_key=k-SECRET&page=2",
            "GET http://***@host/x?api_key=***&page=***",
        ),
        (
            '127.0.0.1:5000 - "WebSocket /ws/executions/e1?token=nd_SECRET&after_seq=3" [accepted]',
            '127.0.0.1:5000 - "WebSocket /ws/executions/e1?token=***&after_seq=***" [accepted]',
        ),
        ("nats://user:SECRET@n1:4222,nats://n2:4222", "nats://***@n1:4222,nats://n2:4222"),
        ("no url here, a=b and ?", "no url here, a=b and ?"),
        ("https://example.com/path#frag", "https://example.com/path#frag"),
    ],
)
def test_user_info_and_query_values_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert "SECRET" not in redact(text)


def test_records_and_their_tracebacks_are_redacted_whichever_logger_makes_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_redaction()
    install_redaction()  # a second call adds nothing
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        logger.info("HTTP Request: %s %s", "GET", "http://u:SECRET@h/p?key=SECRET")
        try:
            raise ValueError("failed to fetch https://h/p?token=SECRET")
        except ValueError:
            logger.exception("request failed")
    assert len(caplog.records) == 2
    assert caplog.records[0].getMessage() == "HTTP Request: GET http://***@h/p?key=***"
    assert "SECRET" not in caplog.text
    assert "ValueError: failed to fetch https://h/p?token=***" in caplog.text


def captured(fmt: str, name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own whose lines go, in ``fmt``, to the returned buffer."""
    install_redaction()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(fmt))
    logger = logging.getLogger(f"test.logsetup.{name}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_a_json_line_carries_the_bound_execution_and_a_redacted_traceback() -> None:
    logger, out = captured("json", "json")
    with bind(execution_id="ex-1", node="fetch", attempt=2):
        try:
            raise RuntimeError("refused by https://u:SECRET@api.example/x?key=SECRET")
        except RuntimeError:
            logger.exception("calling %s failed", "https://api.example/x?key=SECRET")
    logger.info("after the block")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["execution_id"], first["node"], first["attempt"]) == ("ex-1", "fetch", 2)
    assert (first["level"], first["logger"]) == ("error", "test.logsetup.json")
    assert first["event"] == "calling https://api.example/x?key=*** failed"
    assert "RuntimeError" in first["exception"]
    assert "SECRET" not in out.getvalue()
    assert "execution_id" not in second  # unbound once the block ended
    assert second["timestamp"].endswith("Z")


def test_a_text_line_ends_with_the_bound_context() -> None:
    logger, out = captured("text", "text")
    with bind(execution_id="ex-2", node="a", attempt=1):
        logger.warning("slow")
    line = out.getvalue().strip()
    assert line.endswith("WARNING test.logsetup.text: slow execution_id=ex-2 node=a attempt=1")


async def test_context_bound_in_one_task_stays_out_of_another() -> None:
    logger, out = captured("json", "tasks")
    inside = asyncio.Event()
    done = asyncio.Event()

    async def bound() -> None:
        with bind(execution_id="mine"):
            inside.set()
            await done.wait()
            logger.info("bound task")

    async def other() -> None:
        await inside.wait()
        logger.info("other task")
        done.set()

    await asyncio.gather(bound(), other())
    lines = {d["event"]: d for d in map(json.loads, out.getvalue().splitlines())}
    assert lines["bound task"]["execution_id"] == "mine"
    assert "execution_id" not in lines["other task"]
