"""An example custom node type (see docs/nodes.md): adds a greeting to each item."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pydantic import Field

from nodedrop.contracts.credential_types import CredentialFields, CredentialTypeSpec
from nodedrop.contracts.nodetypes import NodeTypeSpec, Parameters


class GreetParameters(Parameters):
    greeting: str = Field(default="hello", min_length=1, max_length=100)


class Greet:
    spec = NodeTypeSpec(
        "greet", "Greet", "action", GreetParameters, description="Adds `greeting` to each item"
    )

    def run(
        self, ctx: Any, node_input: dict[str, list[dict[str, Any]]], parameters: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        greeting = GreetParameters.model_validate(parameters).greeting
        items = [item for port in node_input.values() for item in port]
        ctx.log.info(f"greeting {len(items)} item(s) with {greeting!r}")
        return {
            "main": [
                {**item, "greeting": f"{greeting}, {item.get('name', 'world')}"} for item in items
            ]
        }


class GenerateParameters(Parameters):
    count: int = Field(default=10, ge=0, le=1_000_000)
    #: Characters of padding per item, to make items of a realistic size.
    padding: int = Field(default=0, ge=0, le=100_000)


class Generate:
    """Makes ``count`` items: a source of test data of any size."""

    spec = NodeTypeSpec(
        "generate",
        "Generate items",
        "action",
        GenerateParameters,
        description="Outputs `count` items {n, padding}",
    )

    def run(
        self, ctx: Any, node_input: dict[str, list[dict[str, Any]]], parameters: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        chosen = GenerateParameters.model_validate(parameters)
        pad = "x" * chosen.padding
        ctx.log.info(f"generating {chosen.count} items")
        return {"main": [{"n": n, "padding": pad} for n in range(chosen.count)]}


class SigningKeyFields(CredentialFields):
    key_id: str = Field(min_length=1, max_length=100, description="shown, sent with signatures")
    secret: str = Field(min_length=16, max_length=1024, json_schema_extra={"writeOnly": True})


#: Registered under the ``nodedrop.credential_types`` entry points: users create credentials of
#: this type through POST /api/credentials, and ``secret`` is sealed like any secret field.
SIGNING_KEY = CredentialTypeSpec(
    "example_signing_key",
    "Example signing key",
    SigningKeyFields,
    ("secret",),
    "An HMAC-SHA256 key for the example `sign` node.",
)


class SignParameters(Parameters):
    credential: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a signing key's id")


class Sign:
    """Adds an HMAC-SHA256 signature of each item, with the key a credential holds: how a custom
    node type uses a credential (the runner resolves it into ``ctx.credential(...)``)."""

    spec = NodeTypeSpec(
        "sign",
        "Sign",
        "action",
        SignParameters,
        description="Adds an HMAC-SHA256 `signature` of each item",
        credential_parameters=("credential",),
    )

    def run(
        self, ctx: Any, node_input: dict[str, list[dict[str, Any]]], parameters: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        credential = ctx.credential("credential")
        if credential.type != SIGNING_KEY.type:
            raise TypeError(f"credential {credential.id} is no {SIGNING_KEY.type}")
        key = credential.fields["secret"].encode()
        items = [item for port in node_input.values() for item in port]
        ctx.log.info(f"signing {len(items)} item(s) with {credential!r}")
        signed = []
        for item in items:
            digest = hmac.new(key, json.dumps(item, sort_keys=True).encode(), hashlib.sha256)
            signed.append(
                {**item, "signature": digest.hexdigest(), "key_id": credential.fields["key_id"]}
            )
        return {"main": signed}
