"""The api's settings: where it listens, the notifiers it relays /ws/* to, request limits."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import field_validator

from nodedrop.contracts.expressions.limits import MAX_EXPRESSION_LENGTH
from nodedrop.contracts.workflow import MAX_NODES
from nodedrop.platform.settings import (
    AdminSettings,
    CommonSettings,
    DatabaseSettings,
    ListenSettings,
    SecretKeySettings,
    setting,
)

_NOTIFIER_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class ApiSettings(
    CommonSettings, ListenSettings, DatabaseSettings, AdminSettings, SecretKeySettings
):
    notifier_url: tuple[str, ...] | None = setting(
        None,
        "Comma-separated notifier base URLs (`http(s)://host[:port]`, `ws`/`wss` accepted) the "
        "api relays `/ws/*` to, each relay starting at the next one in turn",
        secret=True,  # a wrong entry may carry credentials: the message names it without them
        shown_default="`http://<NODEDROP_HOST>:<NODEDROP_NOTIFIER_PORT>`",
    )
    max_body_bytes: int = setting(
        8 * 1024 * 1024,
        'Largest request body (a larger one is a 413; docs/api.md, "Limits")',
        shown_default="8 MiB (8388608)",
        ge=1,
    )
    max_workflow_nodes: int = setting(
        2000, "Most nodes of one workflow (a 422 beyond)", ge=1, le=MAX_NODES
    )
    max_input_items: int = setting(
        10_000, "Most items of an execution's input (a 422 beyond)", ge=1
    )
    max_expression_length: int = setting(
        10_000,
        "Most characters of one `{{ }}` expression (the evaluator's own bound is the ceiling)",
        ge=1,
        le=MAX_EXPRESSION_LENGTH,
    )
    max_wait_s: float = setting(
        60.0,
        "Longest `wait` (seconds) a request may ask for: `POST /api/executions?wait=`, "
        "`GET /api/executions/{id}?wait=`, and a webhook's response timeout",
        gt=0,
        le=3600,
    )
    web_dir: Path | None = setting(
        None, "The web UI's build directory", shown_default="`web/dist` of the checkout"
    )

    @field_validator("notifier_url", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            value = [entry for entry in value.split(",") if entry.strip()]
            if not value:
                raise ValueError("lists no URL")
        if isinstance(value, list | tuple):
            return tuple(_notifier_url(str(entry)) for entry in value)
        return value

    @property
    def notifier_urls(self) -> tuple[str, ...]:
        """The notifiers to relay to: the configured ones, else the one on this host."""
        return self.notifier_url or (f"http://{self.host}:{self.notifier_port}",)


def _notifier_url(entry: str) -> str:
    """``http(s)://host[:port]`` (ws/wss accepted), normalised to http(s) without a slash."""
    entry = entry.strip()
    shown = "an entry with credentials" if "@" in entry else repr(entry)
    bad = ValueError(f"{shown} is not a URL http(s)://host[:port]")
    try:
        parts = urlsplit(entry)
        port = parts.port  # ValueError unless a number in 0-65535
    except ValueError:  # also a broken [IPv6] literal
        raise bad from None
    scheme = _NOTIFIER_SCHEMES.get(parts.scheme.lower())
    host = parts.hostname
    extra = parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc
    if scheme is None or not host or port == 0 or extra or any(c.isspace() for c in entry):
        raise bad
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port is None else f":{port}")
