"""Logging for every service: one format, and no secret in any line.

Secrets travel in URLs: user info (``https://user:password@host``) and query strings
(``?api_key=...``, the WebSocket's ``?token=``). Libraries log URLs as they got them (httpx logs
every request it sends, uvicorn every WebSocket it accepts), so redaction cannot be left to each
call site. It happens where every record is made, whichever logger and handler it goes to: the
message is rendered and redacted once, and so is the traceback of a record that carries one.

Lines are text for a terminal or JSON for a log pipeline (``NODEDROP_LOG_FORMAT``: ``text``, the
default, or ``json``), rendered by structlog from every library's standard logging records.
What a task is working on is bound to its context (:func:`bind`): the execution, node and
attempt, and the trace id when tracing is on, go on every line it logs, so that one search for
an execution id follows it through every service.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import structlog
from opentelemetry import trace

#: ``scheme://user:password@`` -> ``scheme://***@``
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/?#@]+@")
#: Each query parameter's value: ``?token=abc&x=1`` -> ``?token=***&x=***``. Any ``?k=v`` in a
#: line is taken for a query: a lost value in a log line costs less than a leaked key.
_QUERY_VALUE = re.compile(r"(?P<key>[?&][^\s=&#?\"']+)=[^\s&#\"']*")
REDACTED = "***"
#: What :func:`bind` puts on lines, in this order on a text line.
_CONTEXT_KEYS = ("execution_id", "node", "attempt", "trace_id")


def redact(text: str) -> str:
    """``text`` without URL user info and query values."""
    text = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    return _QUERY_VALUE.sub(rf"\g<key>={REDACTED}", text)


def install_redaction() -> None:
    """Redacts every log record made from now on in this process (idempotent)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "redacts", False):
        return
    formatter = logging.Formatter()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set: the traceback is rendered here, redacted.
            record.exc_text = redact(formatter.formatException(record.exc_info))
        return record

    redacted_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted_record)


@contextlib.contextmanager
def bind(**context: Any) -> Iterator[None]:
    """Put ``context`` (``execution_id``, ``node``, ``attempt``...) on every line logged in this
    task until the block ends (asyncio tasks started meanwhile inherit it)."""
    with structlog.contextvars.bound_contextvars(**context):
        yield


def configure_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    """The root logger of a service's process: one line per record on stderr, redacted, as
    ``fmt`` (``text`` or ``json``: the service's NODEDROP_LOG_FORMAT), with the bound
    context."""
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # httpx logs each request at INFO, URL included: useful, once redacted, only when debugging.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))


def formatter(fmt: str) -> logging.Formatter:
    """A formatter rendering standard records, with the bound context, as ``fmt`` lines."""
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _trace_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _redacted_traceback,
    ]
    if fmt == "json":
        pre_chain.insert(0, structlog.processors.TimeStamper(fmt="iso", utc=True))
        render: list[Any] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ]
    else:
        pre_chain.insert(0, structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S.%f", utc=False))
        render = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, _text_line]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=render)


def _trace_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event.setdefault("trace_id", format(span.trace_id, "032x"))
    return event


def _redacted_traceback(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The traceback the record factory rendered and redacted, never one rendered again from
    the exception (which would carry the secrets back)."""
    record = event.get("_record")
    event.pop("exc_info", None)
    if record is not None and record.exc_text:
        event["exception"] = record.exc_text
    return event


def _text_line(_: Any, __: str, event: dict[str, Any]) -> str:
    """``time LEVEL logger: message key=value...`` and the traceback on the lines below."""
    context = " ".join(f"{k}={event.pop(k)}" for k in _CONTEXT_KEYS if k in event)
    line = (
        f"{event.pop('timestamp', '')} {str(event.pop('level', '')).upper()} "
        f"{event.pop('logger', '')}: {event.pop('event', '')}"
    )
    traceback = event.pop("exception", None)
    extra = " ".join(f"{k}={v}" for k, v in event.items())
    line = " ".join(part for part in (line, context, extra) if part)
    return f"{line}\n{traceback}" if traceback else line
