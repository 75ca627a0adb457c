"""Credential types: their schemas, validation, the split into readable and secret fields,
and masking."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nodedrop.contracts.credential_types import (
    BUILTIN_CREDENTIAL_TYPES,
    CredentialTypeRegistry,
    CredentialTypeSpec,
    HttpHeaderFields,
    mask,
    secret_strings,
)

REGISTRY = CredentialTypeRegistry()


@pytest.mark.parametrize("spec", BUILTIN_CREDENTIAL_TYPES, ids=lambda s: s.type)
def test_every_secret_field_is_write_only_in_the_schema(spec: CredentialTypeSpec) -> None:
    schema = spec.schema()
    assert schema["type"] == "object"
    assert spec.secret_fields
    for name in spec.secret_fields:
        assert schema["properties"][name]["writeOnly"] is True
    for name in set(schema["properties"]) - set(spec.secret_fields):
        assert "writeOnly" not in schema["properties"][name]


def test_the_builtin_types() -> None:
    assert [spec.type for spec in REGISTRY] == [
        "http_header",
        "bearer_token",
        "basic_auth",
        "query_parameter",
        "oauth2_client_credentials",
        "key_value",
    ]


def test_a_credential_splits_into_readable_and_secret_fields() -> None:
    spec = REGISTRY.get("oauth2_client_credentials")
    assert spec is not None
    checked = spec.validate(
        {"token_url": "https://auth.example/token", "client_id": "app", "client_secret": "s"}
    )
    public, secret = spec.split(checked)
    assert public == {
        "token_url": "https://auth.example/token",
        "client_id": "app",
        "client_auth": "basic",
    }
    assert secret == {"client_secret": "s"}


@pytest.mark.parametrize(
    ("type_name", "data", "where"),
    [
        ("http_header", {"name": "X Key", "value": "v"}, "name"),
        ("http_header", {"name": "X-Key", "value": "a\r\nInjected: 1"}, "value"),
        ("bearer_token", {"token": ""}, "token"),
        ("bearer_token", {"token": "t", "extra": 1}, "extra"),
        ("basic_auth", {"username": "a:b", "password": "p"}, "username"),
        (
            "oauth2_client_credentials",
            {"token_url": "ftp://x", "client_id": "c", "client_secret": "s"},
            "token_url",
        ),
        ("key_value", {"secrets": {}}, "secrets"),
        ("key_value", {"secrets": {"a": 1}}, "secrets"),
    ],
)
def test_bad_fields_are_refused_at_their_location(
    type_name: str, data: dict[str, object], where: str
) -> None:
    spec = REGISTRY.get(type_name)
    assert spec is not None
    with pytest.raises(ValidationError) as error:
        spec.validate(data)
    assert error.value.errors()[0]["loc"][0] == where


def test_masks_show_at_most_the_last_four_characters_of_long_secrets() -> None:
    assert mask("abc") == "****"
    assert mask("x" * 15) == "****"
    assert mask("0123456789abcdef") == "****cdef"
    assert mask({"a": "0123456789abcdefXYZW", "b": "s"}) == {"a": "****XYZW", "b": "****"}


def test_secret_strings_finds_every_string() -> None:
    assert sorted(secret_strings({"a": "x", "b": ["y", {"c": "z"}], "n": 1})) == ["x", "y", "z"]


def test_a_type_is_registered_once_and_its_secret_fields_exist() -> None:
    with pytest.raises(ValueError, match="twice"):
        CredentialTypeRegistry([*BUILTIN_CREDENTIAL_TYPES, BUILTIN_CREDENTIAL_TYPES[0]])
    with pytest.raises(ValueError, match="no fields"):
        CredentialTypeSpec("x", "X", HttpHeaderFields, ("nope",))
