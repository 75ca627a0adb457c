"""``nodedrop workflows export | import | import-n8n`` and ``nodedrop run``, as a user runs
them (the command in its own process), against the real system."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nodedrop.client import AsyncClient

from .system import System

pytestmark = pytest.mark.e2e

N8N_EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "n8n"
FIRST: dict[str, Any] = {
    "name": "transfer",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "tag", "type": "set", "parameters": {"values": {"v": 1}}},
    ],
    "connections": [{"from": "start", "to": "tag"}],
}
SECOND: dict[str, Any] = {
    **FIRST,
    "nodes": [FIRST["nodes"][0], {"id": "tag", "type": "set", "parameters": {"values": {"v": 2}}}],
}


async def nodedrop(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODEDROP_URL": system.base_url, "NODEDROP_TOKEN": system.token}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "nodedrop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_export_then_import_keeps_every_version(system: System, tmp_path: Path) -> None:
    async with AsyncClient(system.base_url, system.token) as api:
        original = await api.create_workflow(FIRST)
        await api.update_workflow(original.id, SECOND)

        exported = await nodedrop(system, "workflows", "export", original.id)
        assert exported.returncode == 0, exported.stderr
        assert "exported 1 workflows (2 versions)" in exported.stderr
        path = tmp_path / "export.json"
        path.write_text(exported.stdout)

        imported = await nodedrop(system, "workflows", "import", str(path))
        assert imported.returncode == 0, imported.stdout + imported.stderr
        copy_id = imported.stdout.split(" as ", 1)[1].split(":", 1)[0]
        assert copy_id != original.id
        assert "2 versions" in imported.stdout
        copies = await api.workflow_versions(copy_id)
        assert [w.definition() for w in copies] == [
            w.definition() for w in await api.workflow_versions(original.id)
        ]

        replaced = await nodedrop(system, "workflows", "import", "--replace", str(path))
        assert replaced.returncode == 0, replaced.stdout
        assert f"replaced 'transfer' ({original.id}): now version 3" in replaced.stdout
        assert (await api.get_workflow(original.id)).version == 3


async def test_export_of_everything_and_of_an_unknown_id(system: System) -> None:
    async with AsyncClient(system.base_url, system.token) as api:
        ids = {(await api.create_workflow(FIRST)).id for _ in range(2)}
    everything = await nodedrop(system, "workflows", "export")
    assert everything.returncode == 0, everything.stderr
    exported = {w["id"] for w in json.loads(everything.stdout)["workflows"]}
    assert ids <= exported
    unknown = await nodedrop(system, "workflows", "export", "no-such-workflow")
    assert unknown.returncode == 2
    assert "workflow 'no-such-workflow' not found" in unknown.stderr
    assert unknown.stdout == ""


async def test_import_reports_a_workflow_the_api_refuses(system: System, tmp_path: Path) -> None:
    broken = {**FIRST, "nodes": [{"id": "start", "type": "no_such_type"}], "connections": []}
    document = {
        "format": "nodedrop.workflows",
        "format_version": 1,
        "workflows": [
            {"versions": [{"definition": FIRST}]},
            {"name": "broken", "versions": [{"definition": broken}]},
        ],
    }
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    result = await nodedrop(system, "workflows", "import", str(path))
    assert result.returncode == 1
    assert "failed   'broken' (None): 422: nodes[0].type:" in result.stdout
    assert "1 imported, 1 failed" in result.stdout

    (tmp_path / "not-json.json").write_text("{")
    unreadable = await nodedrop(system, "workflows", "import", str(tmp_path / "not-json.json"))
    assert unreadable.returncode == 2
    assert "is not valid JSON" in unreadable.stderr


async def test_an_imported_n8n_workflow_runs_as_it_did_in_n8n(system: System) -> None:
    result = await nodedrop(system, "workflows", "import-n8n", str(N8N_EXPORTS / "orders.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT MAPPED: n8n-nodes-base.code" in result.stdout
    workflow_id = result.stdout.rsplit("saved as ", 1)[1].split()[0]
    # What n8n itself computed from the same items (tests/fixtures/n8n/README.md).
    n8n_run = json.loads((N8N_EXPORTS / "runs" / "orders.json").read_text())
    async with AsyncClient(system.base_url, system.token) as api:
        done = await api.submit_and_wait(workflow_id, input=n8n_run["input_items"], timeout_s=60)
    assert done.status == "succeeded", done
    n8n = n8n_run["outputs"]
    assert done.nodes["compute_total"].output == {"main": n8n["Compute total"][0]}
    # No order is big: the true branch is empty in both, and nodedrop skips the node behind it.
    assert done.nodes["big_order"].output == dict(
        zip(["true", "false"], n8n["Big order?"], strict=True)
    )
    assert done.nodes["notify_sales"].status == "skipped"
    assert done.nodes["by_country"].output == dict(
        zip(["europe", "us", "fallback"], n8n["By country"], strict=True)
    )
    assert done.nodes["cool_down"].output == {"main": n8n["Cool down"][0]}
    assert done.nodes["merge"].output == {"main": n8n["Merge"][0]}
    # n8n runs Done once per arriving branch; nodedrop once, after both.
    done_ids = sorted(item["id"] for item in (done.nodes["done"].output or {})["main"])
    assert done_ids == [1, 2, 3]


async def test_run_follows_the_execution_through_the_client(system: System, tmp_path: Path) -> None:
    path = tmp_path / "first.json"
    path.write_text(json.dumps(FIRST))
    result = await nodedrop(system, "run", str(path), "--input", '{"n": 1}')
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
