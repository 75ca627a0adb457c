"""n8n expressions translated to nodedrop's language, or reported as not translated."""

from __future__ import annotations

import pytest

from nodedrop.cli.n8n.expressions import (
    Names,
    Untranslatable,
    translate_expression,
    translate_value,
)
from nodedrop.contracts.expressions import evaluate, make_scope

IDS = Names({"Get user": "get_user", "Webhook": "webhook"}, webhooks=frozenset({"Webhook"}))


@pytest.mark.parametrize(
    ("n8n", "nodedrop"),
    [
        ("$json.total > 100", "item.total > 100"),
        ('$json["first name"]', 'item["first name"]'),
        ("$input.item.json.id", "item.id"),
        ('$node["Get user"].json.name', 'nodes["get_user"]["main"][0].name'),
        ("$('Webhook').item.json.body.order", 'nodes["webhook"]["main"][0].order'),
        ("$('Webhook').first().json.body", 'nodes["webhook"]["main"][0]'),
        ("$('Get user').last().json.id", 'nodes["get_user"]["main"][-1].id'),
        ("$execution.id", "execution.id"),
        ('$json.a === "x" && !($json.b || $json.c)', 'item.a == "x" and not (item.b or item.c)'),
        ("$json.a !== undefined", "item.a != None"),
        ("$json.tags.length", "len(item.tags)"),
        ('$json["first name"].trim().length > 0', 'len(item["first name"].strip()) > 0'),
        ("$json.n.toString()", "str(item.n)"),
        ("$json.s.toLowerCase().startsWith('a')", "item.s.lower().startswith('a')"),
        ("Math.round($json.x * 100) / 100", "round(item.x * 100) / 100"),
        ("JSON.stringify($json)", "to_json(item)"),
        ("parseInt($json.n)", "int(item.n)"),
    ],
)
def test_what_maps(n8n: str, nodedrop: str) -> None:
    assert translate_expression(n8n, IDS) == nodedrop


@pytest.mark.parametrize(
    ("n8n", "why"),
    [
        ("$json.a ? 1 : 2", "ternary"),
        ("$json.a ?? 1", r"\?\?"),
        ("$json.a?.b", r"\?\."),
        ("$now.toISO()", r"\$now"),
        ("$workflow.id", r"\$workflow"),
        ("$json.items.map(i => i.x)", "map"),
        ("$('Nope').item.json.x", "no node named 'Nope'"),
        ("$json.tags.includes('a')", "includes"),
        ("window.alert(1)", "'window'"),
        ("{a: 1}", "object literals"),
        ("$('Webhook').item.json.headers.host", "headers: nodedrop's webhook item is the JSON"),
    ],
)
def test_what_does_not_map_says_why(n8n: str, why: str) -> None:
    with pytest.raises(Untranslatable, match=why):
        translate_expression(n8n, IDS)


def test_json_after_a_webhook_is_its_body() -> None:
    after_webhook = Names(IDS.node_ids, IDS.webhooks, fed_by_webhook=True)
    assert translate_expression('$json.body.email + $json["body"].name', after_webhook) == (
        "item.email + item.name"
    )
    with pytest.raises(Untranslatable, match="query: nodedrop's webhook item"):
        translate_expression("$json.query.page", after_webhook)
    assert translate_expression("$json.body.email", IDS) == "item.body.email"


def test_a_translation_evaluates_as_n8n_would() -> None:
    translated = translate_expression('$json.name.trim().toUpperCase() + "!"', IDS)
    scope = make_scope({"name": "  ada "}, {}, {"id": "ex1", "trigger": "start"})
    assert evaluate(translated, scope) == "ADA!"


def test_parameters_translate_templates_and_keep_literals() -> None:
    value = {
        "url": "=https://api.example.org/users/{{ $json.id }}?q={{ $json.q }}",
        "literal": "no expression {{ here }}",
        "list": ["={{ $json.a }}", 3],
        "broken": "={{ $now }}",
    }
    translation = translate_value(value, IDS, "parameters")
    assert translation.value["url"] == (
        "https://api.example.org/users/{{ item.id }}?q={{ item.q }}"
    )
    # Without "=" n8n takes braces literally; so does nodedrop once they are escaped.
    assert translation.value["literal"] == 'no expression {{ "{{" }} here }}'
    assert translation.value["list"] == ["{{ item.a }}", 3]
    assert "{{" not in translation.value["broken"]
    assert translation.value["broken"].startswith("n8n expression not translated")
    [problem] = translation.problems
    assert problem.startswith("parameters.broken: '{{ $now }}'")
