"""``If-Match`` on ``PUT /api/workflows/{id}``: a save based on an older version is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .harness import Api

pytestmark = pytest.mark.integration


async def _created(api: Api, workflow: dict[str, Any]) -> str:
    created = await api.client.post("/api/workflows", json=workflow)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _renamed(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    changed = copy.deepcopy(workflow)
    changed["name"] = name
    return changed


async def test_the_second_of_two_saves_based_on_one_version_is_refused(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow_id = await _created(api, workflow)
    url = f"/api/workflows/{workflow_id}"
    got = await api.client.get(url)
    assert got.headers["etag"] == '"1"'

    first = await api.client.put(url, json=_renamed(workflow, "tab 1"), headers={"If-Match": '"1"'})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2
    assert first.headers["etag"] == '"2"'

    second = await api.client.put(
        url, json=_renamed(workflow, "tab 2"), headers={"If-Match": '"1"'}
    )
    assert second.status_code == 409
    assert second.json()["current_version"] == 2
    assert "version 2 is the latest" in second.json()["detail"]
    assert second.headers["etag"] == '"2"'
    latest = (await api.client.get(url)).json()
    assert (latest["version"], latest["name"]) == (2, "tab 1")  # tab 1's change is kept

    # Overwriting knowingly: the version the 409 named.
    again = await api.client.put(url, json=_renamed(workflow, "tab 2"), headers={"If-Match": '"2"'})
    assert again.status_code == 200, again.text
    assert (again.json()["version"], again.json()["name"]) == (3, "tab 2")


@pytest.mark.parametrize("if_match", ['W/"1"', "1", '"7", "1"', "*"])
async def test_weak_bare_listed_and_any_tags_match(
    api: Api, workflow: dict[str, Any], if_match: str
) -> None:
    workflow_id = await _created(api, workflow)
    response = await api.client.put(
        f"/api/workflows/{workflow_id}", json=workflow, headers={"If-Match": if_match}
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


async def test_without_if_match_a_save_is_not_checked(api: Api, workflow: dict[str, Any]) -> None:
    workflow_id = await _created(api, workflow)
    for version in (2, 3):
        response = await api.client.put(f"/api/workflows/{workflow_id}", json=workflow)
        assert response.json()["version"] == version


@pytest.mark.parametrize("if_match", ["abc", '"1', '"-1"', '"99999999999"'])
async def test_a_malformed_if_match_is_a_422_naming_the_header(
    api: Api, workflow: dict[str, Any], if_match: str
) -> None:
    workflow_id = await _created(api, workflow)
    response = await api.client.put(
        f"/api/workflows/{workflow_id}", json=workflow, headers={"If-Match": if_match}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "if-match"]
    assert (await api.client.get(f"/api/workflows/{workflow_id}")).json()["version"] == 1


async def test_an_unknown_workflow_is_404_before_the_version_is_compared(
    api: Api, workflow: dict[str, Any]
) -> None:
    response = await api.client.put(
        "/api/workflows/nope", json=workflow, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 404
