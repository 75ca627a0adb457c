"""What the app holds while it runs: connections opened in the lifespan, closed after it."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine

from nodedrop.api.db import Sessions
from nodedrop.api.eventlog import EventLog
from nodedrop.api.schedules import ScheduleStore
from nodedrop.api.waiters import Waiters
from nodedrop.platform.datastore import DataStore


@dataclass(frozen=True)
class Resources:
    nc: NatsClient
    engine: AsyncEngine
    sessions: Sessions
    events: EventLog
    schedules: ScheduleStore
    #: Large node outputs, kept in the object store by the runners.
    data: DataStore
    #: Requests waiting for an execution's end, resolved by the notifier's notices.
    waiters: Waiters = field(default_factory=Waiters)
