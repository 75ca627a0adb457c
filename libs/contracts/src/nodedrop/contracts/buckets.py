"""Key-value buckets the services open, creating them on first use (safe from every service at
once: a create with the same configuration is answered with the bucket)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue


async def open_key_value(js: JetStreamContext, config: KeyValueConfig) -> tuple[KeyValue, bool]:
    """The bucket ``config`` names, created with ``config`` if missing; and whether it existed."""
    try:
        return await js.key_value(config.bucket), True
    except BucketNotFoundError:
        return await js.create_key_value(config), False
