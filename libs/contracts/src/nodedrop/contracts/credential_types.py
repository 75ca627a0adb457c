"""Credential types: which fields a credential of each type has, and which of them are secret.

A type is a :class:`CredentialTypeSpec`: a pydantic model of all its fields plus the names of
the secret ones. The api validates what users send with it, keeps the other fields readable and
seals the secret ones (:mod:`nodedrop.platform.secretbox`); the runner hands the decrypted
fields to the node. Custom node packages add types as objects registered under the entry-point
group ``nodedrop.credential_types`` (as they add node types under ``nodedrop.nodes``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ENTRY_POINT_GROUP = "nodedrop.credential_types"

#: Secrets this long or longer show their last 4 characters once masked; shorter ones none, so
#: a mask never gives away more than a quarter of a secret.
_SHOW_TAIL_FROM = 16
MASK = "****"

_HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$"
_NO_LINE_BREAK = r"^[^\r\n\x00]*$"


class CredentialFields(BaseModel):
    """Base of every type's model: unknown fields are errors, values are strictly typed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _secret(description: str, **limits: Any) -> Any:
    return Field(
        min_length=1,
        max_length=limits.pop("max_length", 8192),
        description=description,
        json_schema_extra={"writeOnly": True, "format": "password"},
        **limits,
    )


class HttpHeaderFields(CredentialFields):
    name: str = Field(pattern=_HEADER_NAME, description="header name, e.g. X-Api-Key")
    value: str = _secret("header value", pattern=_NO_LINE_BREAK)


class BearerTokenFields(CredentialFields):
    token: str = _secret("sent as `Authorization: Bearer <token>`", pattern=_NO_LINE_BREAK)


class BasicAuthFields(CredentialFields):
    username: str = Field(max_length=1024, pattern=r"^[^:\r\n\x00]*$")
    password: str = _secret("sent with the username as `Authorization: Basic ...`")


class QueryParameterFields(CredentialFields):
    name: str = Field(min_length=1, max_length=256, description="query parameter name")
    value: str = _secret("query parameter value")


class OAuth2ClientCredentialsFields(CredentialFields):
    token_url: str = Field(
        min_length=1, max_length=8192, pattern=r"^https?://", description="token endpoint"
    )
    client_id: str = Field(min_length=1, max_length=1024)
    client_secret: str = _secret("the client's secret")
    scope: str | None = Field(default=None, max_length=4096)
    #: RFC 6749 2.3.1: HTTP Basic is what every server must accept; some only take the body.
    client_auth: Literal["basic", "body"] = Field(
        default="basic", description="send the client id and secret as HTTP Basic or in the body"
    )


class KeyValueFields(CredentialFields):
    """Generic: for custom node types, which read ``fields`` and ``secrets`` themselves."""

    fields: dict[str, str] = Field(default_factory=dict, description="readable settings")
    secrets: dict[str, str] = Field(
        min_length=1, description="secret values", json_schema_extra={"writeOnly": True}
    )


@dataclass(frozen=True)
class CredentialTypeSpec:
    type: str
    display_name: str
    fields: builtins.type[CredentialFields]
    #: Names of the secret fields: sealed at rest, never answered after they are written.
    secret_fields: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.secret_fields) - set(self.fields.model_fields)
        if unknown:
            raise ValueError(f"credential type {self.type!r}: no fields {sorted(unknown)}")

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.fields.model_json_schema()
        return schema

    def validate(self, data: Mapping[str, Any]) -> CredentialFields:
        """Raises pydantic's ValidationError (locations are field names)."""
        return self.fields.model_validate(data)

    def split(self, checked: CredentialFields) -> tuple[dict[str, Any], dict[str, Any]]:
        """(readable fields, secret fields) of a validated credential, as JSON values."""
        everything = checked.model_dump(mode="json", exclude_none=True)
        secret = {k: v for k, v in everything.items() if k in self.secret_fields}
        public = {k: v for k, v in everything.items() if k not in self.secret_fields}
        return public, secret


def mask(value: Any) -> Any:
    """A secret as it may be shown: ``****`` and at most its last 4 characters (strings of 16
    or more); a mapping's values each masked."""
    if isinstance(value, Mapping):
        return {key: mask(item) for key, item in value.items()}
    text = str(value)
    return MASK + text[-4:] if len(text) >= _SHOW_TAIL_FROM else MASK


def secret_strings(value: Any) -> Iterator[str]:
    """Every string inside a secret field's value (for redaction)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secret_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from secret_strings(item)


BUILTIN_CREDENTIAL_TYPES: tuple[CredentialTypeSpec, ...] = (
    CredentialTypeSpec(
        "http_header",
        "HTTP header",
        HttpHeaderFields,
        ("value",),
        "A header sent with each request, e.g. X-Api-Key.",
    ),
    CredentialTypeSpec(
        "bearer_token", "Bearer token", BearerTokenFields, ("token",), "Authorization: Bearer."
    ),
    CredentialTypeSpec(
        "basic_auth", "Basic auth", BasicAuthFields, ("password",), "Authorization: Basic."
    ),
    CredentialTypeSpec(
        "query_parameter",
        "Query parameter",
        QueryParameterFields,
        ("value",),
        "A query parameter added to each request's URL, e.g. ?api_key=...",
    ),
    CredentialTypeSpec(
        "oauth2_client_credentials",
        "OAuth2 client credentials",
        OAuth2ClientCredentialsFields,
        ("client_secret",),
        "The runner fetches an access token from the token URL, caches it until shortly "
        "before it expires, and sends it as Authorization: Bearer.",
    ),
    CredentialTypeSpec(
        "key_value",
        "Key-value",
        KeyValueFields,
        ("secrets",),
        "Generic settings and secrets, for custom node types.",
    ),
)


class CredentialTypeRegistry:
    def __init__(self, specs: Iterable[CredentialTypeSpec] = BUILTIN_CREDENTIAL_TYPES) -> None:
        self._specs: dict[str, CredentialTypeSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: CredentialTypeSpec) -> None:
        if spec.type in self._specs:
            raise ValueError(f"credential type {spec.type!r} is registered twice")
        self._specs[spec.type] = spec

    def get(self, type_name: str) -> CredentialTypeSpec | None:
        return self._specs.get(type_name)

    def __iter__(self) -> Iterator[CredentialTypeSpec]:
        return iter(self._specs.values())

    @classmethod
    def with_plugins(cls) -> CredentialTypeRegistry:
        """Built-ins plus every :class:`CredentialTypeSpec` registered under the
        ``nodedrop.credential_types`` entry points; a broken one stops the service at start."""
        registry = cls()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            spec = entry_point.load()
            if not isinstance(spec, CredentialTypeSpec):
                raise TypeError(
                    f"credential type entry point {entry_point.name!r} is no CredentialTypeSpec"
                )
            registry.register(spec)
        return registry
