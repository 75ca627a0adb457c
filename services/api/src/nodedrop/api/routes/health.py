from __future__ import annotations

from fastapi import APIRouter, Request, Response

from nodedrop.api.schemas import Health
from nodedrop.platform import ops

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> Health:
    """Liveness: the process answers. No authentication."""
    return Health()


# Operators' tools (Kubernetes probes, Prometheus): no authentication, no id or secret in the
# answers; keep them off the public address at the proxy (docs/operations.md).
@router.get("/livez", include_in_schema=False)
@router.get("/readyz", include_in_schema=False)
@router.get("/metrics", include_in_schema=False)
async def operator(request: Request) -> Response:
    """``/livez``, ``/readyz`` (connected to NATS and PostgreSQL) and ``/metrics``."""
    found = ops.answer(request.url.path, request.app.state.checks)
    assert found is not None  # (routed only for the three paths)
    return Response(found.body, found.status, media_type=found.content_type)
