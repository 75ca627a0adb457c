"""The code node's contract, in the real sandbox: modes, ports, logs, errors, packages."""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any

import pytest

from nodedrop.contracts.items import PortItems
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.code import CodeNode
from nodedrop.runner.sandbox.settings import SandboxSettings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap (.ci/run does)",
    ),
]

SETTINGS = SandboxSettings(cpu_s=5)


async def run(
    source: str,
    items: list[dict[str, Any]],
    *,
    ctx: NodeContext | None = None,
    settings: SandboxSettings = SETTINGS,
    **parameters: Any,
) -> PortItems:
    node = CodeNode(settings)
    return await node.run(
        ctx or NodeContext("e1", "py", 1), {"main": items}, {"source": source, **parameters}
    )


async def failure(source: str, items: list[dict[str, Any]], **options: Any) -> NodeError:
    with pytest.raises(NodeError) as info:
        await run(source, items, **options)
    return info.value


async def test_all_items_gets_the_list_and_its_list_goes_to_main() -> None:
    source = "def main(items, ctx):\n    return sorted(items, key=lambda i: -i['n'])\n"
    assert await run(source, [{"n": 1}, {"n": 3}]) == {"main": [{"n": 3}, {"n": 1}]}


async def test_each_item_returns_one_item_a_list_or_none() -> None:
    source = (
        "def main(item, ctx):\n"
        "    if item['n'] == 0:\n"
        "        return None\n"
        "    if item['n'] == 2:\n"
        "        return [item, item]\n"
        "    return {'n': item['n'], 'seen_by': ctx.node}\n"
    )
    output = await run(source, [{"n": 0}, {"n": 1}, {"n": 2}], mode="each_item")
    assert output == {"main": [{"n": 1, "seen_by": "py"}, {"n": 2}, {"n": 2}]}


async def test_main_may_take_only_the_items() -> None:
    assert await run("def main(items):\n    return items[:1]\n", [{"a": 1}, {"a": 2}]) == {
        "main": [{"a": 1}]
    }


async def test_ctx_send_routes_items_to_declared_ports() -> None:
    source = (
        "def main(item, ctx):\n"
        "    if item['n'] < 0:\n"
        "        ctx.send('rejected', item)\n"
        "        return None\n"
        "    return item\n"
    )
    output = await run(
        source, [{"n": 1}, {"n": -1}], mode="each_item", outputs=["rejected", "unused"]
    )
    assert output == {"main": [{"n": 1}], "rejected": [{"n": -1}], "unused": []}
    error = await failure(
        "def main(items, ctx):\n    ctx.send('nowhere', items)\n    return []\n", [{}]
    )
    assert error.type == "CodeError"
    assert "'nowhere' is not one of the node's outputs" in error.message
    assert "(line 2)" in error.message


async def test_logs_and_prints_become_the_nodes_log_lines_even_when_it_fails() -> None:
    ctx = NodeContext("e1", "py", 1)
    source = (
        "def main(items, ctx):\n"
        "    ctx.log.info('starting')\n"
        "    print('printed', len(items))\n"
        "    ctx.log.warning('about to fail')\n"
        "    raise ValueError('no good')\n"
    )
    with pytest.raises(NodeError):
        await run(source, [{}, {}], ctx=ctx)
    assert [(line.level, line.message) for line in ctx.log.lines] == [
        ("info", "starting"),
        ("info", "printed 2"),
        ("warning", "about to fail"),
    ]


async def test_an_exception_is_a_code_error_with_the_users_traceback_only() -> None:
    source = (
        "def helper(x):\n"
        "    return 1 / x\n"
        "\n"
        "def main(item, ctx):\n"
        "    return {'r': helper(item['x'])}\n"
    )
    error = await failure(source, [{"x": 1}, {"x": 0}], mode="each_item")
    assert error.type == "CodeError"
    assert error.retryable is False
    assert error.message == "ZeroDivisionError: division by zero (line 2)"
    stack = error.stack or ""
    assert 'File "<code>", line 5, in main' in stack
    assert 'File "<code>", line 2, in helper' in stack
    assert "return 1 / x" in stack
    assert "nodedrop" not in stack
    assert "bootstrap" not in stack


@pytest.mark.parametrize(
    ("source", "mode", "expected"),
    [
        ("def main(items, ctx):\n    return None\n", "all_items", "must return a list"),
        ("def main(items, ctx):\n    return [1]\n", "all_items", "item 0 is a int"),
        ("def main(item, ctx):\n    return 'x'\n", "each_item", "not str"),
        ("def main(items, ctx):\n    return [{'s': {1, 2}}]\n", "all_items", "not JSON"),
        ("def main(items, ctx):\n    return [{'f': float('nan')}]\n", "all_items", "not JSON"),
    ],
)
async def test_a_result_that_is_not_items_is_a_code_error(
    source: str, mode: str, expected: str
) -> None:
    error = await failure(source, [{}], mode=mode)
    assert error.type == "CodeError"
    assert expected in error.message


async def test_only_the_standard_library_unless_a_package_is_allowed() -> None:
    source = "import yaml\ndef main(items, ctx):\n    return [{'y': yaml.safe_load('a: 1')}]\n"
    error = await failure(source, [{}])
    assert error.message.startswith("ModuleNotFoundError: No module named 'yaml'")
    allowed = dataclasses.replace(SETTINGS, allowed_packages=("yaml",))
    assert await run(source, [{}], settings=allowed) == {"main": [{"y": {"a": 1}}]}


async def test_standard_library_modules_work() -> None:
    source = (
        "import json, re, datetime, decimal, hashlib, zoneinfo, tempfile\n"
        "def main(items, ctx):\n"
        "    with tempfile.NamedTemporaryFile('w') as scratch:\n"
        "        scratch.write('ok')\n"
        "    when = datetime.datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))\n"
        "    digest = hashlib.sha256(json.dumps(items).encode()).hexdigest()[:8]\n"
        "    total = str(decimal.Decimal('0.1') * 3)\n"
        "    return [{'d': digest, 'when': when.isoformat(), 'sum': total}]\n"
    )
    [item] = (await run(source, [{"a": 1}]))["main"]
    assert item["when"] == "2026-01-01T00:00:00+01:00"
    assert item["sum"] == "0.3"


async def test_the_weaker_process_mode_runs_code_too() -> None:
    weaker = dataclasses.replace(SETTINGS, mode="process")
    source = "import os\ndef main(items, ctx):\n    return [{'env': sorted(os.environ)}]\n"
    output = await run(source, [{}], settings=weaker)
    assert output["main"][0]["env"] == [] or "NODEDROP" not in str(output)


async def test_a_reply_over_the_limit_kills_the_sandbox() -> None:
    small = dataclasses.replace(SETTINGS, max_reply_bytes=10_000)
    source = "def main(items, ctx):\n    return [{'x': 'y' * 100_000}]\n"
    error = await failure(source, [{}], settings=small)
    assert error.type == "CodeLimitExceeded"
