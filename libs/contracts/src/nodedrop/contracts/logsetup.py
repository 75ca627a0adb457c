"""Logging for every service: one format, and no secret in any line.

Secrets travel in URLs: user info (``https://user:password@host``) and query strings
(``?api_key=...``, the WebSocket's ``?token=``). Libraries log URLs as they got them (httpx logs
every request it sends, uvicorn every WebSocket it accepts), so redaction cannot be left to each
call site. It happens where every record is made, whichever logger and handler it goes to: the
message is rendered and redacted once, and so is the traceback of a record that carries one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: ``scheme://user:password@`` -> ``scheme://***@``
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/?#@]+@")
#: Each query parameter's value: ``?token=abc&x=1`` -> ``?token=***&x=***``. Any ``?k=v`` in a
#: line is taken for a query: a lost value in a log line costs less than a leaked key.
_QUERY_VALUE = re.compile(r"(?P<key>[?&][^\s=&#?\"']+)=[^\s&#\"']*")
REDACTED = "***"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure_logging(level: int = logging.INFO) -> None:
    """The root logger of a service's process: one line per record on stderr, redacted."""
    install_redaction()
    logging.basicConfig(level=level, format=_FORMAT)
    # httpx logs each request at INFO, URL included: useful, once redacted, only when debugging.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
