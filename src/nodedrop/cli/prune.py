"""``nodedrop prune [--older-than DAYS] [--dry-run]``: remove executions that finished more than
DAYS ago from the stream, the projection and the data store, now (the notifier does the same
periodically; docs/operations.md, "Retention").

Exit status: 0 done (or nothing to do), 1 the stream does not allow purges, 2 a setting is wrong
or the servers could not be reached.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nodedrop.cli import admin, settings


@dataclass(frozen=True)
class PruneRequest:
    #: None: ``NODEDROP_RETENTION_DAYS``.
    older_than_days: float | None = None
    dry_run: bool = False


def prune(request: PruneRequest) -> int:
    from nodedrop.notifier.settings import NotifierSettings

    try:
        servers = admin.servers()
        days = request.older_than_days
        if days is None:
            retention = NotifierSettings.from_env().retention
            if not retention.enabled:
                print("nodedrop prune: retention is off (NODEDROP_RETENTION_DAYS=0); "
                      "pass --older-than DAYS to prune anyway", file=sys.stderr)  # fmt: skip
                return 2
            days = retention.days
    except (ValueError, settings.SettingError) as error:
        print(f"nodedrop prune: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_prune(servers, days, request.dry_run))
    except Exception as error:
        print(f"nodedrop prune: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


async def _prune(servers: admin.Servers, days: float, dry_run: bool) -> int:
    from nodedrop.contracts.routing import Layout
    from nodedrop.notifier.retention import PurgeDeniedError, describe
    from nodedrop.notifier.retention import prune as prune_executions
    from nodedrop.notifier.store import create_pool
    from nodedrop.platform import natsconnect

    cutoff = datetime.now(UTC) - timedelta(days=days)
    nc = await natsconnect.connect(servers.nats, name="nodedrop prune", max_reconnect_attempts=2)
    try:
        pool = await create_pool(servers.database_url, max_size=2)
        try:
            report = await prune_executions(
                nc.jetstream(), pool, cutoff, dry_run=dry_run, layout=Layout.from_env()
            )
        except PurgeDeniedError as error:
            print(f"nodedrop prune: {error}", file=sys.stderr)
            return 1
        finally:
            await pool.close()
    finally:
        await nc.close()
    print(describe(report))
    return 0
