"""Table definitions (SQLModel). Every projection value comes from events, never from the clock
at projection time, so a rebuild from the stream yields the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


def _time(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflows"

    id: str = Field(primary_key=True)
    name: str
    version: int
    definition: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    owner: str = Field(index=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    #: Deleted workflows keep their rows so that their executions stay explainable.
    deleted_at: datetime | None = _time()


class WorkflowVersionRow(SQLModel, table=True):
    __tablename__ = "workflow_versions"

    workflow_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    definition: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_by: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ExecutionRow(SQLModel, table=True):
    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_owner_created", "requested_by", "created_at"),
        Index("ix_executions_workflow_created", "workflow_id", "created_at"),
        Index("ix_executions_parent", "parent_execution_id"),
    )

    id: str = Field(primary_key=True)
    workflow_id: str | None = None
    workflow_version: int | None = None
    mode: str
    trigger: str | None = None
    node: str | None = None
    status: str
    requested_by: str
    rerun_of: str | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    error: dict[str, Any] | None = _json()
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: The execution began to end (cancel, deadline, a failure under ``on_error: fail``): the
    #: notifier ignores runner results from here on, as the scheduler does.
    ending: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default="false")
    )
    #: A child of an ``execute_workflow`` node: the parent execution and node.
    parent_execution_id: str | None = None
    parent_node: str | None = None
    #: The scheduler records each failure's outcome (``ExecutionStarted.v`` 2): the notifier
    #: reads failures from those (docs/architecture.md, "One fold of a history").
    outcomes_recorded: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default="false")
    )


class NodeExecutionRow(SQLModel, table=True):
    __tablename__ = "node_executions"

    execution_id: str = Field(primary_key=True)
    node: str = Field(primary_key=True)
    #: Position in the plan, so nodes list in definition order.
    position: int
    status: str
    attempts: int = 0
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    input: dict[str, Any] | None = _json()
    output: dict[str, Any] | None = _json()
    error: dict[str, Any] | None = _json()
    skip_reason: str | None = None
    pinned: bool = False
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: Attempts a lost runner ended that were made again at once (not counted by the policy).
    runner_lost: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    #: A ``wait`` node waiting on the scheduler's timer until then.
    wait_until: datetime | None = _time()
    #: The child executions an ``execute_workflow`` node started (in item order); None for
    #: other nodes.
    children: list[str] | None = _json()
    #: What the scheduler made of the node's failure for good (``NodeFailureHandled``):
    #: ``fail``, ``continue`` or ``error_output``; NULL otherwise.
    outcome: str | None = None


class ExecutionLogRow(SQLModel, table=True):
    __tablename__ = "execution_logs"
    __table_args__ = (
        UniqueConstraint("execution_id", "seq", "line", name="uq_execution_logs_seq_line"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    execution_id: str = Field(index=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: Position within the event: a ``NodeLogged`` event holds several lines.
    line: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    time: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    level: str
    node: str | None = None
    message: str = Field(sa_column=Column(Text, nullable=False))


class ProjectionCheckpointRow(SQLModel, table=True):
    """The last stream sequence a projector applied; written in the same transaction as rows."""

    __tablename__ = "projection_checkpoints"

    name: str = Field(primary_key=True)
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class UserRow(SQLModel, table=True):
    """A user: owns workflows and executions (their ``owner`` / ``requested_by`` is its id)."""

    __tablename__ = "users"

    id: str = Field(primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    is_admin: bool = False
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An API key, by its public id; only the SHA-256 digest of the key is kept
    (``nodedrop.platform.apikeys`` says why that suffices)."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True)
    user_id: str = Field(foreign_key="users.id", index=True)
    digest: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = _time()


class CredentialRow(SQLModel, table=True):
    """A user's credential (docs/credentials.md): readable ``fields``, and the secret ones
    sealed together in ``secret`` (AES-GCM under NODEDROP_SECRET_KEY, bound to the id)."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_credentials_owner_name"),)

    id: str = Field(primary_key=True)
    owner: str = Field(index=True)
    type: str
    name: str
    fields: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    secret: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    #: Which key sealed ``secret`` (its fingerprint), so a rotation cut short is visible.
    key_fingerprint: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    #: Where a runner last used it (the events of that attempt list it too).
    last_used_at: datetime | None = _time()
    last_used_execution: str | None = None
    last_used_node: str | None = None


class SecretKeyCheckRow(SQLModel, table=True):
    """One row: a known value sealed under the key the credentials are sealed with, opened at
    every start so that a wrong NODEDROP_SECRET_KEY is refused before any credential is read."""

    __tablename__ = "secret_key_check"

    id: int = Field(default=1, primary_key=True)
    key_fingerprint: str
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


metadata = SQLModel.metadata
