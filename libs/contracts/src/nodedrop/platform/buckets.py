"""Key-value buckets the services open, creating them on first use (safe from every service at
once: a create with the same configuration is answered with the bucket)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from nodedrop.platform.retry import retry_unavailable

#: Tries while the cluster answers 503 or nothing (backoff to 2 s: about 15 s).
_OPEN_ATTEMPTS = 12


async def open_key_value(js: JetStreamContext, config: KeyValueConfig) -> tuple[KeyValue, bool]:
    """The bucket ``config`` names, created with ``config`` if missing; and whether it existed.
    Asked again while a cluster answers 503 or nothing (services open buckets as they start)."""

    async def open_or_create() -> tuple[KeyValue, bool]:
        try:
            return await js.key_value(config.bucket), True
        except BucketNotFoundError:
            return await js.create_key_value(config), False

    return await retry_unavailable(
        open_or_create, what=f"open bucket {config.bucket}", attempts=_OPEN_ATTEMPTS
    )
