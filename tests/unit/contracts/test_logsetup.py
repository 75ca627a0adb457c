"""Log redaction: URL user info and query values never reach a log line."""

from __future__ import annotations

import logging

import pytest

from nodedrop.contracts.logsetup import install_redaction, redact


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
