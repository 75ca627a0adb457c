"""Large node outputs: stored in the JetStream object store, referenced from events.

A node output whose JSON is over :data:`OFFLOAD_THRESHOLD` bytes does not travel inside the
event. Each port's items are stored as one object (a JSON array), and the port holds a single
*reference item* in their place: ``{"$nodedrop_ref": {"bucket", "name", "count", "bytes"}}``.
Everything between runners (the scheduler's input assembly, skip decisions, the projection)
handles the reference like any item; runners expand references back into items before a node
runs, and the API streams a referenced output on request. No event carries the data itself.

The key ``$nodedrop_ref`` is reserved: nodes may not output it and users may not send it
(``contains_reference``), so a reference can only come from a runner that stored the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from nodedrop.contracts import subjects
from nodedrop.contracts.items import REF_KEY, Item, PortItems

#: Outputs larger than this (as JSON) go to the object store (ENGINEERING/issue: 256 KiB).
OFFLOAD_THRESHOLD = 256 * 1024

_encoder = msgspec.json.Encoder()
_items_decoder = msgspec.json.Decoder(list[dict[str, Any]])


class DataUnavailableError(RuntimeError):
    """A referenced output is not (or no longer) in the object store."""


def is_reference(item: Mapping[str, Any]) -> bool:
    return REF_KEY in item and len(item) == 1


def contains_reference(items: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any item uses the reserved key (what users and nodes may not send)."""
    return any(REF_KEY in item for item in items)


def item_count(items: Iterable[Mapping[str, Any]]) -> int:
    """How many items ``items`` stand for, references counting as the items they hold."""
    return sum(item[REF_KEY]["count"] if is_reference(item) else 1 for item in items)


class DataStore:
    def __init__(
        self, js: JetStreamContext, *, threshold: int = OFFLOAD_THRESHOLD, replicas: int = 1
    ) -> None:
        """``replicas``: of the object store, when this creates it (NODEDROP_STREAM_REPLICAS)."""
        self._js = js
        self._replicas = replicas
        self._threshold = threshold
        self._store: ObjectStore | None = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> ObjectStore:
        async with self._lock:
            if self._store is None:
                try:
                    self._store = await self._js.object_store(subjects.DATA_BUCKET)
                except BucketNotFoundError:
                    self._store = await self._js.create_object_store(
                        subjects.DATA_BUCKET,
                        ObjectStoreConfig(
                            description="nodedrop: large node outputs",
                            storage=StorageType.FILE,
                            replicas=self._replicas,
                        ),
                    )
            return self._store

    async def offload(self, output: PortItems, name_prefix: str) -> PortItems:
        """``output`` as it may travel in an event: unchanged if small, else each non-empty
        port stored and replaced by one reference item."""
        encoded = {port: _encoder.encode(items) for port, items in output.items()}
        if sum(len(data) for data in encoded.values()) <= self._threshold:
            return output
        bucket = await self._bucket()
        slim: PortItems = {}
        for port, items in output.items():
            if not items:
                slim[port] = []
                continue
            name = f"{name_prefix}/{port}"
            await bucket.put(name, encoded[port])
            slim[port] = [
                {
                    REF_KEY: {
                        "bucket": subjects.DATA_BUCKET,
                        "name": name,
                        "count": len(items),
                        "bytes": len(encoded[port]),
                    }
                }
            ]
        return slim

    async def expand(self, port_items: Mapping[str, list[Item]]) -> PortItems:
        """``port_items`` with every reference replaced by the items it stands for."""
        expanded: PortItems = {}
        for port, items in port_items.items():
            if not any(is_reference(item) for item in items):
                expanded[port] = list(items)
                continue
            out: list[Item] = []
            for item in items:
                if is_reference(item):
                    out.extend(await self.load(item))
                else:
                    out.append(item)
            expanded[port] = out
        return expanded

    async def load(self, reference: Item) -> list[Item]:
        data = bytearray()
        async for chunk in self.chunks(reference):
            data += chunk
        return _items_decoder.decode(data)

    async def chunks(self, reference: Item) -> AsyncIterator[bytes]:
        """The referenced items' JSON array, chunk by chunk (for streaming it to a client)."""
        name = reference[REF_KEY]["name"]
        bucket = await self._bucket()
        try:
            info = await bucket.get_info(name)
        except NotFoundError as error:
            raise DataUnavailableError(f"stored output {name!r} is gone") from error
        if not info.size:
            return
        subject = f"$O.{subjects.DATA_BUCKET}.C.{info.nuid}"
        sub = await self._js.subscribe(subject, ordered_consumer=True)
        try:
            received = 0
            while received < info.size:
                msg = await sub.next_msg(timeout=10)
                received += len(msg.data)
                yield msg.data
        finally:
            await sub.unsubscribe()
