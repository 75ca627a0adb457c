"""Large outputs go to the object store and come back intact (real nats-server)."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from nodedrop.contracts.items import REF_KEY, PortItems
from nodedrop.platform.datastore import DataStore, is_reference, item_count

pytestmark = pytest.mark.integration


async def test_a_small_output_stays_inline(jetstream: JetStreamContext) -> None:
    output: PortItems = {"main": [{"n": 1}], "other": []}
    assert await DataStore(jetstream).offload(output, "ex/a/1") == output


async def test_a_large_output_is_stored_and_expands_back(jetstream: JetStreamContext) -> None:
    store = DataStore(jetstream, threshold=1024)
    output: PortItems = {
        "main": [{"n": i, "pad": "x" * 50} for i in range(500)],
        "empty": [],
        "few": [{"k": "v"}],
    }
    slim = await store.offload(output, "ex/big/1")
    assert slim["empty"] == []
    [main_ref] = slim["main"]
    assert is_reference(main_ref)
    assert main_ref[REF_KEY]["count"] == 500
    assert item_count(slim["main"]) == 500
    assert len(str(slim)) < 1000
    assert await store.expand(slim) == output


async def test_references_mixed_with_items_keep_their_order(jetstream: JetStreamContext) -> None:
    store = DataStore(jetstream, threshold=10)
    slim = await store.offload({"main": [{"a": 1}, {"a": 2}]}, "ex/mix/1")
    mixed = {"main": [{"first": True}, *slim["main"], {"last": True}]}
    assert await store.expand(mixed) == {
        "main": [{"first": True}, {"a": 1}, {"a": 2}, {"last": True}]
    }


async def test_chunks_stream_the_stored_json(jetstream: JetStreamContext) -> None:
    store = DataStore(jetstream, threshold=10)
    items = [{"i": i, "blob": "y" * 1000} for i in range(300)]  # ~300 KB: several chunks
    [ref] = (await store.offload({"main": items}, "ex/stream/1"))["main"]
    chunks = [chunk async for chunk in store.chunks(ref)]
    assert len(chunks) > 1
    assert b"".join(chunks).startswith(b'[{"i":0,')
    assert await store.load(ref) == items
