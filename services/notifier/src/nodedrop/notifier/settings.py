"""The notifier's settings: its WebSocket server, the projection's batching, retention."""

from __future__ import annotations

from pydantic import field_validator

from nodedrop.notifier.retention import RetentionSettings
from nodedrop.platform.settings import (
    AdminSettings,
    CommonSettings,
    DatabaseSettings,
    LeaseSettings,
    ListenSettings,
    own_origins,
    setting,
)


class NotifierSettings(
    CommonSettings, LeaseSettings, ListenSettings, DatabaseSettings, AdminSettings
):
    allowed_origins: tuple[str, ...] | None = setting(
        None,
        "Comma-separated origins browsers may open the WebSocket from (else closed with 4403; "
        'docs/api.md, "WebSocket")',
        shown_default="the API's base URL",
    )
    projection_linger_ms: float = setting(
        20.0,
        "Milliseconds a projection batch keeps collecting after its first event (up to 500 "
        "events) before it is written in one transaction; 0 writes what has arrived at once. "
        "Only the projection lags by it; WebSocket clients read the stream",
        ge=0,
        allow_inf_nan=False,
    )
    retention_days: float = setting(
        30.0,
        "Days after its end an execution is removed (fractions allowed; 0 keeps everything; "
        "see Retention; also `nodedrop prune`)",
        ge=0,
        allow_inf_nan=False,
    )
    prune_interval_s: float = setting(
        3600.0,
        "Seconds between pruning runs (the first at the notifier's start)",
        gt=0,
        allow_inf_nan=False,
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @property
    def websocket_origins(self) -> frozenset[str]:
        """The configured allowed origins, or the API's own base URLs."""
        if self.allowed_origins is not None:
            return frozenset(self.allowed_origins)
        return own_origins(self.host, self.port)

    @property
    def linger_s(self) -> float:
        return self.projection_linger_ms / 1000

    @property
    def retention(self) -> RetentionSettings:
        return RetentionSettings(days=self.retention_days, interval_s=self.prune_interval_s)
