"""The web UI (``web/``, a single-page app) served at the API's base URL.

``/`` and every path no API route claims answer ``index.html`` (the app routes in the browser),
a file of the build answers itself. Paths under the API's own prefixes (``/api/``, ``/ws/``,
``/webhooks/``, the docs) never fall back to the app: an unknown API path stays a JSON 404.

The build directory is the api's ``NODEDROP_WEB_DIR``, default the repository's ``web/dist``.
Without a build the API runs as before and ``/`` says how to build the UI.

The build holds compressed copies of its larger files (``app.js.br``, ``app.js.gz``, written by
``web/scripts/precompress.mjs``): a client that accepts one of their encodings gets that copy,
so nothing is compressed per request.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

#: First path segments that belong to the API, never to the app.
API_PREFIXES = frozenset(
    {
        "api",
        "ws",
        "webhooks",
        "health",
        "livez",
        "readyz",
        "metrics",
        "openapi.json",
        "docs",
        "redoc",
    }
)
#: Vite puts content-hashed files here: they never change under one name.
HASHED_ASSETS = "assets"
#: Precompressed copies next to a file, best first: (Content-Encoding, file suffix).
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
NOT_BUILT = (
    "The nodedrop web UI is not built.\n"
    "Build it with `make web` (needs Node.js 20 and npm), or set NODEDROP_WEB_DIR to a build.\n"
    "The API is at /api (see /docs).\n"
)


def default_web_dir() -> Path:
    """``web/dist`` of the checkout this module is installed from (an editable install)."""
    # services/api/src/nodedrop/api/webui.py -> the repository root is five levels up.
    return Path(__file__).resolve().parents[5] / "web" / "dist"


def install_web_ui(app: FastAPI, web_dir: Path | None = None) -> None:
    """Add the catch-all route; call it after every API route is registered."""
    root = (web_dir.expanduser() if web_dir else default_web_dir()).resolve()

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_ui(path: str, request: Request) -> Response:
        first = path.split("/", 1)[0]
        if first in API_PREFIXES:
            raise HTTPException(status_code=404, detail="Not Found")
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=200 if path == "" else 404)
        file = _file_in(root, path)
        if file is not None:
            immutable = path.startswith(f"{HASHED_ASSETS}/")
            cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
            return _file_response(file, request.headers.get("accept-encoding", ""), cache)
        if path.startswith(f"{HASHED_ASSETS}/"):
            raise HTTPException(status_code=404, detail="Not Found")  # a stale asset name
        # Any other path is a route of the app: it decides what to show.
        return _file_response(index, request.headers.get("accept-encoding", ""), "no-cache")


def _file_response(file: Path, accept_encoding: str, cache: str) -> FileResponse:
    """The file, or its precompressed copy in an encoding the client accepts."""
    headers = {"Cache-Control": cache}
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    copies = [(encoding, file.with_name(file.name + suffix)) for encoding, suffix in ENCODINGS]
    copies = [(encoding, copy) for encoding, copy in copies if copy.is_file()]
    if copies:
        headers["Vary"] = "Accept-Encoding"  # caches must keep one answer per encoding
    accepted = accepted_encodings(accept_encoding)
    for encoding, copy in copies:
        if encoding in accepted:
            headers["Content-Encoding"] = encoding
            return FileResponse(copy, media_type=media_type, headers=headers)
    return FileResponse(file, media_type=media_type, headers=headers)


def accepted_encodings(accept_encoding: str) -> set[str]:
    """The content codings an ``Accept-Encoding`` header allows (``q=0`` refuses one)."""
    accepted = set()
    for part in accept_encoding.lower().split(","):
        name, *params = (p.strip() for p in part.split(";"))
        refused = any(p.replace(" ", "") in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params)
        if name and not refused:
            accepted.add(name)
    if "*" in accepted:
        accepted.update(encoding for encoding, _ in ENCODINGS)
    return accepted


def _file_in(root: Path, path: str) -> Path | None:
    """The file ``path`` names inside ``root``; None when there is none or it would leave root."""
    if not path:
        return None
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate
