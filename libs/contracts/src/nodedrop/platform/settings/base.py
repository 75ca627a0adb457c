"""The base of every service's settings: typed, bounded fields read from ``NODEDROP_*`` variables.

A field ``port`` is the variable ``NODEDROP_PORT``. Every field has a default and a description
(the settings table of docs/operations.md is generated from them). Values come from a mapping,
the process environment by default, so tests and ``nodedrop up`` can build settings from an
environment of their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "NODEDROP_"


def variable_of(field_name: str) -> str:
    """The environment variable of a settings field: ``port`` -> ``NODEDROP_PORT``."""
    return PREFIX + field_name.upper()


def setting(
    default: Any,
    description: str,
    *,
    secret: bool = False,
    verbatim: bool = False,
    shown_default: str | None = None,
    **bounds: Any,
) -> Any:
    """A settings field: its default, a one-line description, and pydantic's bounds (``ge``,
    ``le``...). ``secret``: never echoed in an error nor in the repr (tokens, passwords, URLs
    that may carry credentials). ``verbatim``: taken as given, spaces included (a password),
    where other values are stripped. ``shown_default``: how the docs name a default that is
    computed (``None`` in the field)."""
    secret = secret or verbatim  # a value given as is is a password or a token
    extra: dict[str, Any] = {"secret": secret, "verbatim": verbatim}
    if shown_default is not None:
        extra["shown_default"] = shown_default
    return Field(
        default, description=description, repr=not secret, json_schema_extra=extra, **bounds
    )


class SettingsError(ValueError):
    """A wrong setting: one line naming each wrong variable and what it must be."""


class EnvSettings(BaseModel):
    """Settings read from ``NODEDROP_*`` variables (:meth:`from_env`) or given by field name."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=variable_of,
        populate_by_name=True,
        str_strip_whitespace=False,
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings in ``env`` (default: the process's). An empty variable counts as
        unset; a wrong value is a :class:`SettingsError` naming the variable."""
        env = os.environ if env is None else env
        given: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            variable = variable_of(name)
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            given[variable] = raw if _flag(field.json_schema_extra, "verbatim") else raw.strip()
        try:
            settings = cls.model_validate(given)
        except ValidationError as error:
            raise SettingsError(_named(error, cls)) from None
        try:
            settings.check()
        except ValueError as error:
            raise SettingsError(str(error)) from None
        return settings

    @classmethod
    def load(cls) -> Self:
        """:meth:`from_env` for a service starting: a wrong setting ends the process with one
        line naming it (exit status 1), not a traceback."""
        try:
            return cls.from_env()
        except SettingsError as error:
            raise SystemExit(f"configuration: {error}") from None

    def check(self) -> None:
        """Checks across fields, or of the system (files exist...), run by :meth:`from_env`;
        a ValueError names the variables."""


def is_secret(extra: object) -> bool:
    """Whether a field's value must never be shown (its ``json_schema_extra``)."""
    return _flag(extra, "secret")


def _flag(extra: object, name: str) -> bool:
    return isinstance(extra, dict) and bool(extra.get(name))


def _named(error: ValidationError, settings: type[EnvSettings]) -> str:
    """One part per wrong variable: its name, what it must be, and the value given (unless
    it is a secret)."""
    parts = []
    for problem in error.errors():
        variable = str(problem["loc"][0]) if problem["loc"] else ""
        message = problem["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        field = settings.model_fields.get(variable.removeprefix(PREFIX).lower())
        if field is None:  # a check of the whole model: its message names the variables
            parts.append(message)
            continue
        secret = is_secret(field.json_schema_extra)
        given = "" if secret else f", not {problem.get('input')!r}"
        parts.append(f"{variable}: {message}{given}")
    return "; ".join(parts)
