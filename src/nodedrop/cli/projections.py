"""``nodedrop projections rebuild``: fold the stream again beside the live projection and say
whether they are identical (docs/operations.md, "Rebuilding the projection").

Exit status: 0 identical, 1 different (the first differences are printed), 2 the servers could
not be reached or the rebuild failed, including a stream that could not be read to the end (then
nothing is compared, and how far the read got is printed).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from nodedrop.cli import admin


@dataclass(frozen=True)
class RebuildRequest:
    keep: bool = False
    batch_size: int = 1000
    max_differences: int = 20


def rebuild(request: RebuildRequest) -> int:
    try:
        servers = admin.servers()
        return asyncio.run(_rebuild(servers, request))
    except Exception as error:
        print(f"nodedrop projections rebuild: failed: {type(error).__name__}: {error}",
              file=sys.stderr)  # fmt: skip
        return 2


async def _rebuild(servers: admin.Servers, request: RebuildRequest) -> int:
    from nodedrop.notifier.rebuild import rebuild_and_compare
    from nodedrop.platform import natsconnect
    from nodedrop.platform.event_log import JetStreamEventLog
    from nodedrop.platform.jetstream import StreamSettings

    nc = await natsconnect.connect(
        servers.nats, name="nodedrop projections", max_reconnect_attempts=2
    )
    try:
        report = await rebuild_and_compare(
            JetStreamEventLog(nc, nc.jetstream(), StreamSettings.from_env()),
            servers.database_url,
            keep=request.keep,
            batch_size=request.batch_size,
            max_differences=request.max_differences,
        )
    finally:
        await nc.close()
    comparison = report.comparison
    if report.kept:
        print(f"rebuilt projection kept in schema {report.schema}")
    if comparison.identical:
        print(
            f"identical ({report.executions} executions, {comparison.rows} rows; "
            f"{report.events} events replayed up to sequence {report.through_seq})"
        )
        return 0
    print(
        f"different: {comparison.differing_rows} rows differ "
        f"({report.events} events replayed up to sequence {report.through_seq})"
    )
    for table, summary in comparison.tables.items():
        if summary.digest_live != summary.digest_rebuilt:
            print(f"  {table}: {summary.rows_live} rows live, {summary.rows_rebuilt} rebuilt")
    shown = comparison.differences
    print(f"first {len(shown)} differences:" if len(shown) > 1 else "first difference:")
    for difference in shown:
        print(f"  {difference.describe()}")
    return 1
