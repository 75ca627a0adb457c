"""Typed settings from ``NODEDROP_*`` variables: the base, and the groups services share."""

from nodedrop.platform.settings.base import EnvSettings, SettingsError, setting, variable_of
from nodedrop.platform.settings.common import (
    AdminSettings,
    CommonSettings,
    DatabaseSettings,
    LeaseSettings,
    ListenSettings,
    OpsSettings,
    SecretKeySettings,
    own_origins,
)

__all__ = [
    "AdminSettings",
    "CommonSettings",
    "DatabaseSettings",
    "EnvSettings",
    "LeaseSettings",
    "ListenSettings",
    "OpsSettings",
    "SecretKeySettings",
    "SettingsError",
    "own_origins",
    "setting",
    "variable_of",
]
