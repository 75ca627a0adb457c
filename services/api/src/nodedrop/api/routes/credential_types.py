from __future__ import annotations

from fastapi import APIRouter

from nodedrop.api.credential_schemas import CredentialTypeList, CredentialTypeOut
from nodedrop.api.routes.credentials import CredentialTypesDep

router = APIRouter(prefix="/credential-types", tags=["credentials"])


@router.get("")
async def list_credential_types(types: CredentialTypesDep) -> CredentialTypeList:
    """Every credential type this deployment knows, built-ins and plugins, with the JSON
    Schema of its fields (secret ones are ``writeOnly``)."""
    return CredentialTypeList(
        items=[
            CredentialTypeOut(
                type=spec.type,
                display_name=spec.display_name,
                description=spec.description,
                fields_schema=spec.schema(),
                secret_fields=list(spec.secret_fields),
            )
            for spec in types
        ]
    )
