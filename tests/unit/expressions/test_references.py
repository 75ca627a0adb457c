"""Which upstream outputs a node's parameters read."""

from __future__ import annotations

import pytest

from nodedrop.contracts.expressions import ANY_NODE, referenced_nodes


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"condition": "{{ item.total > 100 }}"}, set()),
        ({"condition": '{{ nodes["fetch"]["main"][0].ok }}'}, {"fetch"}),
        ({"url": "https://x/{{ nodes.auth.main[0].token }}/{{ nodes['b'].main }}"}, {"auth", "b"}),
        ({"values": {"a": ['{{ nodes["deep"].main }}']}}, {"deep"}),
        ({"condition": "{{ nodes[item.source].main }}"}, {ANY_NODE}),
        ({"condition": "{{ len(nodes) }}"}, {ANY_NODE}),
        ({"condition": "{{ nodes['x'].main + nodes[item.k].main }}"}, {"x", ANY_NODE}),
        ({"text": "no expressions, nodes['x'] is just text"}, set()),
        ({"condition": "{{ nodes[ }}"}, set()),
        ({"n": 3, "flag": True, "none": None}, set()),
    ],
)
def test_referenced_nodes(parameters: dict[str, object], expected: set[str]) -> None:
    assert referenced_nodes(parameters) == expected


@pytest.mark.parametrize(
    ("source", "value"),
    [("true", True), ("false", False), ("null", None), ("[x for x in [null, true]]", [None, True])],
)
def test_json_literals_read_as_in_json(source: str, value: object) -> None:
    from nodedrop.contracts.expressions import evaluate

    assert evaluate(source, {}) == value
