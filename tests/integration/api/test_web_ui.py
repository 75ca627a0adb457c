"""The web UI served at the API's base URL (nodedrop.api.webui), beside a real API.

The app runs with its lifespan on the test's nats-server and PostgreSQL; NODEDROP_WEB_DIR points
at a small stand-in build, or at an empty directory for "not built".
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from nodedrop.api.app import create_app

from .harness import TOKEN, api_config

INDEX = "<!doctype html><title>nodedrop ui</title>"
ASSET = "console.log('app');"

Serve = Callable[[Path], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-abc123.js").write_text(ASSET)
    (dist / "robots.txt").write_text("User-agent: *\n")
    (tmp_path / "secret.txt").write_text("outside the build")
    return dist


@pytest.fixture
def serve(
    nats_url: str,
    migrated_database_url: str,
    jetstream: JetStreamContext,
) -> Serve:
    @asynccontextmanager
    async def start(web_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(api_config(nats_url, migrated_database_url, web_dir=web_dir))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api"
            ) as client,
        ):
            yield client

    return start


async def test_root_and_app_routes_answer_index_html(serve: Serve, built: Path) -> None:
    async with serve(built) as client:
        for path in ("/", "/workflows/abc", "/workflows/abc/executions/def"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.text == INDEX
            assert response.headers["content-type"].startswith("text/html")
            assert response.headers["cache-control"] == "no-cache"


async def test_build_files_are_served_and_hashed_assets_cached(serve: Serve, built: Path) -> None:
    async with serve(built) as client:
        asset = await client.get("/assets/index-abc123.js")
        assert asset.status_code == 200
        assert asset.text == ASSET
        assert "immutable" in asset.headers["cache-control"]
        assert (await client.get("/robots.txt")).text == "User-agent: *\n"
        # A stale asset name is a 404, not the app's HTML under a script's name.
        assert (await client.get("/assets/index-old.js")).status_code == 404


async def test_no_file_outside_the_build_is_served(serve: Serve, built: Path) -> None:
    async with serve(built) as client:
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
            response = await client.get(path)
            assert "outside the build" not in response.text, path


async def test_api_paths_keep_working_and_never_fall_back(serve: Serve, built: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(built) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/api/workflows")).status_code == 401
        listed = await client.get("/api/workflows", headers=auth)
        assert listed.status_code == 200
        assert "items" in listed.json()
        assert (await client.get("/api/node-types", headers=auth)).status_code == 200
        for path in ("/api/no-such-thing", "/ws/nothing", "/webhooks/x", "/docs/extra"):
            response = await client.get(path, headers=auth)
            assert response.status_code == 404, path
            assert response.json() == {"detail": "Not Found"}
        schema = (await client.get("/openapi.json")).json()
        assert "/api/workflows" in schema["paths"]
        assert "/{path}" not in schema["paths"]
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()


async def test_without_a_build_the_api_runs_and_root_says_how_to_build(
    serve: Serve, tmp_path: Path
) -> None:
    empty = tmp_path / "nothing-built"
    empty.mkdir()
    async with serve(empty) as client:
        root = await client.get("/")
        assert root.status_code == 200
        assert "make web" in root.text
        assert (await client.get("/workflows/x")).status_code == 404
        listed = await client.get("/api/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
        assert listed.status_code == 200


@pytest.fixture
def precompressed(built: Path) -> Path:
    """The stand-in build with the copies web/scripts/precompress.mjs writes."""
    asset = built / "assets" / "index-abc123.js"
    (built / "assets" / "index-abc123.js.gz").write_bytes(gzip.compress(asset.read_bytes()))
    (built / "assets" / "index-abc123.js.br").write_bytes(b"stand-in brotli bytes")
    return built


async def _raw(client: httpx.AsyncClient, path: str, accept: str) -> tuple[httpx.Response, bytes]:
    async with client.stream("GET", path, headers={"Accept-Encoding": accept}) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        ("gzip, deflate, br, zstd", "br"),  # Chromium's
        ("gzip", "gzip"),
        ("br;q=0, gzip;q=0.5", "gzip"),
        ("*", "br"),
    ],
)
async def test_an_accepted_precompressed_copy_is_served(
    serve: Serve, precompressed: Path, accept: str, encoding: str
) -> None:
    suffix = {"br": ".br", "gzip": ".gz"}[encoding]
    async with serve(precompressed) as client:
        response, raw = await _raw(client, "/assets/index-abc123.js", accept)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["vary"] == "Accept-Encoding"
    assert "immutable" in response.headers["cache-control"]
    assert raw == (precompressed / "assets" / f"index-abc123.js{suffix}").read_bytes()
    if encoding == "gzip":
        assert gzip.decompress(raw).decode() == ASSET


@pytest.mark.parametrize("accept", ["", "identity", "gzip;q=0, br;q=0", "deflate"])
async def test_a_client_that_accepts_no_copy_gets_the_file(
    serve: Serve, precompressed: Path, accept: str
) -> None:
    async with serve(precompressed) as client:
        response, raw = await _raw(client, "/assets/index-abc123.js", accept)
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert raw.decode() == ASSET


async def test_a_file_without_copies_is_served_as_it_is(serve: Serve, built: Path) -> None:
    async with serve(built) as client:
        response, raw = await _raw(client, "/", "gzip, br")
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert raw.decode() == INDEX
