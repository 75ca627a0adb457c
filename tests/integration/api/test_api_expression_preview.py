"""POST /api/expressions/preview: the runner's evaluator on given items, errors at the position."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH

from .harness import Api

pytestmark = pytest.mark.integration

ORDER = {"id": 7, "total": 120, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}


async def preview(api: Api, template: str, **scope: Any) -> httpx.Response:
    return await api.client.post("/api/expressions/preview", json={"template": template, **scope})


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ item.total > 100 }}", True),
        ("Order {{ item.id }}: {{ item.total }}", "Order 7: 120"),
        ("{{ [l.sku for l in item.lines if l.qty > 1] }}", ["a"]),
        ('{{ f"{item.id}-{len(item.lines)}" }}', "7-2"),
        ('{{ nodes["login"].main[0].token }}', "t0k"),
        ("{{ execution.trigger }}", "start"),
        ("no expression", "no expression"),
    ],
)
async def test_a_template_renders_with_the_items_given(api: Api, template: str, value: Any) -> None:
    response = await preview(
        api,
        template,
        item=ORDER,
        nodes={"login": {"main": [{"token": "t0k"}]}},
        execution={"id": "e1", "trigger": "start"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"value": value}


async def test_a_syntax_error_is_a_422_at_its_character(api: Api) -> None:
    template = "Total: {{ item.total + }}"
    response = await preview(api, template, item=ORDER)
    assert response.status_code == 422
    [found] = response.json()["detail"]
    assert found["loc"] == ["body", "template"]
    assert "invalid syntax" in found["msg"]
    # "item.total +" ends at the "}}": the parser reports the end of the expression.
    start, end = found["ctx"]["start"], found["ctx"]["end"]
    assert template[:start].rstrip().endswith("+")
    assert end == start + 1


async def test_a_refused_name_is_a_422_at_the_name(api: Api) -> None:
    template = "{{ item.total + secret }}"
    response = await preview(api, template, item=ORDER)
    assert response.status_code == 422
    [found] = response.json()["detail"]
    assert "secret" in found["msg"]
    assert template[found["ctx"]["start"] : found["ctx"]["end"]] == "s"
    assert found["ctx"]["start"] == template.index("secret")


async def test_an_evaluation_error_marks_the_whole_expression(api: Api) -> None:
    template = "a {{ item.total }} b {{ item.missing }}"
    response = await preview(api, template, item=ORDER)
    assert response.status_code == 422
    [found] = response.json()["detail"]
    assert "missing" in found["msg"]
    assert template[found["ctx"]["start"] : found["ctx"]["end"]] == "item.missing"


async def test_too_much_work_is_refused_not_run_long(api: Api) -> None:
    response = await preview(api, "{{ [x for x in range(100000) for y in range(100000)] }}")
    assert response.status_code == 422
    assert "too much work" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "template"]),
        ({"template": 3}, ["body", "template"]),
        ({"template": "{{ 1 }}", "item": [1]}, ["body", "item"]),
        ({"template": "{{ 1 }}", "nodes": {"a": {"main": [1]}}}, ["body", "nodes", "a", "main", 0]),
    ],
)
async def test_a_malformed_request_is_a_422_naming_the_field(
    api: Api, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await api.client.post("/api/expressions/preview", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


async def test_items_nested_too_deeply_are_refused_before_evaluation(api: Api) -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = {"a": deep}
    response = await preview(api, "{{ item }}", item=deep)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "too_deep"


async def test_it_needs_an_api_key(api: Api, anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/api/expressions/preview", json={"template": "{{ 1 }}"})
    assert response.status_code == 401
