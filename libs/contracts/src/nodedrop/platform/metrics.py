"""Every Prometheus metric the services export, defined once (docs/operations.md, "Metrics").

All live in prometheus-client's default registry, next to its process and Python collectors;
each service updates the ones about itself and leaves the others at zero (a counter with labels
shows no series until it is first used). Defining them in one module lets the dashboard and the
alert rules in infra/ be checked against what really exists (tests/unit/deploy).

Labels stay bounded: statuses, results, node types the runner knows (others count as
``unknown``), consumer names and partition numbers, never an execution or user id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Seconds, from a fast publish (~0.5 ms with an fsync) to a slow batch.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds, from a trivial node or execution to an hour-long one.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

# ----------------------------------------------------------------------- scheduler
EXECUTIONS_STARTED = Counter(
    "nodedrop_executions_started_total", "Executions started (ExecutionStarted recorded)"
)
EXECUTIONS_FINISHED = Counter(
    "nodedrop_executions_finished_total",
    "Executions finished (ExecutionFinished recorded), by final status",
    ["status"],
)
EXECUTION_DURATION = Histogram(
    "nodedrop_execution_duration_seconds",
    "From an execution's start to its end, by final status",
    ["status"],
    buckets=_DURATION_BUCKETS,
)
EXECUTIONS_ACTIVE = Gauge(
    "nodedrop_executions_active", "Unfinished executions held by this scheduler"
)
SCHEDULER_BATCH_SIZE = Histogram(
    "nodedrop_scheduler_batch_size",
    "Events the scheduler took from the log in one batch",
    buckets=_BATCH_BUCKETS,
)
SCHEDULER_DECIDE_SECONDS = Histogram(
    "nodedrop_scheduler_decide_seconds",
    "Time to decide on one batch (rebuilding executions included)",
    buckets=_LATENCY_BUCKETS,
)
SCHEDULER_RECORD_SECONDS = Histogram(
    "nodedrop_scheduler_record_seconds",
    "Time to record one batch's decisions and acknowledge its inputs",
    buckets=_LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "nodedrop_dead_letters_total",
    "Dead-letter advisories the scheduler acted on (a consumer gave up on a message), by kind: "
    "max_deliveries or terminated",
    ["kind"],
)
PARTITIONS_OWNED = Gauge(
    "nodedrop_partitions_owned",
    "Partitions whose lease this process holds (schedulers and notifiers)",
    ["group"],
)

# -------------------------------------------------------------------------- runner
NODE_ATTEMPTS = Counter(
    "nodedrop_node_attempts_total",
    "Node attempts a runner ran to an end, by node type and result",
    ["node_type", "result"],
)
NODE_ATTEMPT_DURATION = Histogram(
    "nodedrop_node_attempt_duration_seconds",
    "How long a node attempt ran, by node type and result",
    ["node_type", "result"],
    buckets=_DURATION_BUCKETS,
)
RUNNER_SLOTS_BUSY = Gauge("nodedrop_runner_slots_busy", "Runner slots running a node attempt")
RUNNER_SLOTS = Gauge("nodedrop_runner_slots", "Runner slots in all (NODEDROP_RUNNER_CONCURRENCY)")

# ------------------------------------------------------------------------ notifier
PROJECTION_LAG_EVENTS = Gauge(
    "nodedrop_projection_lag_events",
    "Events stored in a partition's stream and not yet in the projection",
    ["partition"],
)
PROJECTION_LAG_SECONDS = Gauge(
    "nodedrop_projection_lag_seconds",
    "Age of the newest event written to the projection when it was written, by partition",
    ["partition"],
)
WEBSOCKET_CLIENTS = Gauge("nodedrop_websocket_clients", "Open WebSocket connections")

# ---------------------------------------------------------------------- every service
PUBLISH_SECONDS = Histogram(
    "nodedrop_publish_seconds",
    "From sending a batch of events to the stream's acknowledgement of all of them (fsync "
    "included), as the publishing service sees it",
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_PENDING = Gauge(
    "nodedrop_consumer_pending_messages",
    "Messages stored and not yet delivered to a durable consumer (its lag), by consumer and "
    "partition; sampled",
    ["consumer", "partition"],
)
CONSUMER_ACK_PENDING = Gauge(
    "nodedrop_consumer_ack_pending_messages",
    "Messages delivered to a durable consumer and not yet acknowledged, by consumer and "
    "partition; sampled",
    ["consumer", "partition"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "nodedrop_consumer_lag_seconds",
    "Age of the oldest message a durable consumer has not acknowledged (stored and not yet "
    "delivered, or delivered and not yet acknowledged): 0 when it has none, by consumer and "
    "partition; sampled",
    ["consumer", "partition"],
)
CONSUMER_REDELIVERED = Gauge(
    "nodedrop_consumer_redelivered_messages",
    "Messages delivered more than once and not yet acknowledged, by consumer and partition; "
    "sampled",
    ["consumer", "partition"],
)
