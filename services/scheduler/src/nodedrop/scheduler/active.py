"""The set of unfinished executions, kept in a JetStream key-value bucket.

A restarted scheduler must rebuild every unfinished execution, including those that will get
no new event on their own (waiting for a retry timer, or for a runner that died). The bucket
says which they are; their state is then folded from the stream. An execution is added before
its request is acknowledged and removed after its end is recorded; a key left behind by a crash
is removed on the next start, when the fold shows the execution finished.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from nodedrop.contracts import subjects


class ActiveExecutions:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def open(self) -> None:
        try:
            self._kv = await self._js.key_value(subjects.SCHEDULER_STATE_BUCKET)
        except BucketNotFoundError:
            self._kv = await self._js.create_key_value(
                KeyValueConfig(
                    bucket=subjects.SCHEDULER_STATE_BUCKET,
                    history=1,
                    storage=StorageType.FILE,
                    description="nodedrop scheduler: unfinished executions",
                )
            )

    async def ids(self) -> list[str]:
        assert self._kv is not None
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        return [key.rsplit(".", 1)[1] for key in keys if key.startswith("active.")]

    async def add(self, execution_ids: list[str]) -> None:
        """Record ``execution_ids`` as unfinished; returns once stored."""
        await self._send(execution_ids, {})

    async def remove(self, execution_ids: list[str]) -> None:
        await self._send(execution_ids, {"KV-Operation": "DEL"})

    async def _send(self, execution_ids: list[str], headers: dict[str, str]) -> None:
        if not execution_ids:
            return
        futures = [
            await self._js.publish_async(
                subjects.active_key_subject(execution_id), b"", headers=headers or None
            )
            for execution_id in execution_ids
        ]
        await asyncio.wait_for(asyncio.gather(*futures), 5.0)
