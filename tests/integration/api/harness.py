"""Helpers of the API integration tests: the running app and what a test inspects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from nats.js import JetStreamContext
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.resources import Resources
from nodedrop.api.settings import ApiSettings
from nodedrop.contracts.codec import decode
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, is_event_subject
from nodedrop.platform.db.tables import ExecutionLogRow, ExecutionRow, NodeExecutionRow
from nodedrop.platform.jetstream import StreamSettings

TOKEN = "test-admin-token"


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    js: JetStreamContext

    @property
    def resources(self) -> Resources:
        resources = self.app.state.resources
        assert isinstance(resources, Resources)
        return resources

    def session(self) -> AsyncSession:
        return self.resources.sessions()

    async def stream_count(self) -> int:
        """The messages in the log: every partition's stream."""
        count = 0
        for stream in Layout.from_env().streams:
            count += (await self.js.stream_info(stream)).state.messages
        return count

    async def stream_events(self, execution_id: str | None = None) -> list[tuple[AnyEvent, int]]:
        """Every event in the log (of one execution), with its seq in its partition's stream,
        via direct gets: stream by stream, each in order."""
        layout = Layout.from_env()
        streams = layout.streams if execution_id is None else [layout.stream_of(execution_id)]
        found: list[tuple[AnyEvent, int]] = []
        for stream in streams:
            last = (await self.js.stream_info(stream)).state.last_seq
            for seq in range(1, last + 1):
                raw = await self.js.get_msg(stream, seq)
                assert raw.data is not None
                if not is_event_subject(raw.subject or ""):
                    continue  # a partition's fence
                event = decode(raw.data)
                if execution_id is None or event.execution_id == execution_id:
                    found.append((event, seq))
        return found


def api_config(nats_url: str, database_url: str, **changes: Any) -> ApiSettings:
    settings: dict[str, Any] = {"admin_token": TOKEN, **log_settings(), **changes}
    return ApiSettings(nats_url=nats_url, database_url=database_url, **settings)


WORKFLOW: dict[str, Any] = {
    "name": "Order sync",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "shape", "type": "set", "parameters": {"values": {"total": 150}}},
        {"id": "big", "type": "if", "parameters": {"condition": "{{ item.total > 100 }}"}},
        {"id": "done", "type": "noop"},
    ],
    "connections": [
        {"from": "start", "to": "shape"},
        {"from": "shape", "to": "big"},
        {"from": "big", "output": "true", "to": "done"},
    ],
}


T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


async def project_execution(
    api: Api,
    execution_id: str,
    *,
    workflow_id: str | None = None,
    status: str = "running",
    created_at: datetime = T0,
    finished_at: datetime | None = None,
    requested_by: str = "admin",
    nodes: dict[str, dict[str, Any]] | None = None,
    logs: Sequence[tuple[str, str | None, str]] = (),
) -> None:
    """Write what the notifier would have projected for an execution."""
    async with api.session() as session:
        session.add(
            ExecutionRow(
                id=execution_id,
                workflow_id=workflow_id,
                workflow_version=1 if workflow_id else None,
                mode="trigger",
                trigger="start",
                status=status,
                requested_by=requested_by,
                created_at=created_at,
                started_at=created_at + timedelta(milliseconds=5),
                finished_at=finished_at,
                last_seq=10,
            )
        )
        for position, (node, fields) in enumerate((nodes or {}).items()):
            session.add(
                NodeExecutionRow(
                    execution_id=execution_id,
                    node=node,
                    position=position,
                    last_seq=10,
                    **{"status": "succeeded", "attempts": 1, **fields},
                )
            )
        for seq, (level, log_node, message) in enumerate(logs, start=1):
            session.add(
                ExecutionLogRow(
                    execution_id=execution_id,
                    seq=seq,
                    time=created_at + timedelta(seconds=seq),
                    level=level,
                    node=log_node,
                    message=message,
                )
            )
        await session.commit()


def log_settings() -> dict[str, Any]:
    """The log's settings of the environment the tests run with (``NODEDROP_PARTITIONS``...),
    for a service's settings built in a test."""
    streams = StreamSettings.from_env()
    return {
        "partitions": streams.layout.partitions,
        "stream_replicas": streams.replicas,
        "runner_ack_wait_s": streams.runner_ack_wait_s,
        "duplicate_window_s": streams.duplicate_window_s,
    }
