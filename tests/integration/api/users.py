"""Users for the API integration tests: create one through the API, talk to the app as it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from .harness import Api


@dataclass(frozen=True)
class NewUser:
    id: str
    name: str
    key: str
    key_id: str


async def create_user(api: Api, name: str, *, is_admin: bool = False) -> NewUser:
    response = await api.client.post("/api/users", json={"name": name, "is_admin": is_admin})
    assert response.status_code == 201, response.text
    body = response.json()
    return NewUser(body["id"], body["name"], body["api_key"], body["key_id"])


@contextlib.asynccontextmanager
async def client_for(app: FastAPI, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` presenting ``key`` (none at all when None)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    ) as client:
        yield client
