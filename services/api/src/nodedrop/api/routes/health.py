from __future__ import annotations

from fastapi import APIRouter

from nodedrop.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> Health:
    """Liveness: the process answers. No authentication."""
    return Health()
