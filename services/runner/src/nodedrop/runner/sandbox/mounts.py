"""What of the host the code sandbox sees: the interpreter and the libraries it loads, read-only,
and the operator's allowed packages; never the runner's own files, its site-packages or /etc."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

#: Where allowed packages appear in the sandbox (on the sandbox's ``sys.path``).
PACKAGE_DIR = "/sandbox/packages"
_ASK_INTERPRETER = (
    "import json, sys, sysconfig; print(json.dumps([sys.base_prefix, "
    "sysconfig.get_path('stdlib'), '%d.%d' % sys.version_info[:2]]))"
)


@dataclass(frozen=True)
class Mounts:
    #: Host paths bound read-only at the same place in the sandbox.
    read_only: tuple[str, ...]
    #: Paths (host symlinks such as /lib -> usr/lib) made as the same symlinks.
    symlinks: tuple[tuple[str, str], ...]
    #: Directories hidden under an empty read-only tmpfs (site-packages).
    hidden: tuple[str, ...]
    #: (host path, sandbox path) of the allowed packages.
    packages: tuple[tuple[str, str], ...]
    interpreter: str

    def readable_by_anyone(self) -> bool:
        """Whether a user with no rights of its own (``nobody``) can read every mount."""
        return all(_world_readable(path) for path in self.read_only) and all(
            _world_readable(host) for host, _inside in self.packages
        )


def runner_interpreter() -> str:
    """The real interpreter behind the runner's (a venv's ``python`` is a symlink to it)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _world_readable(path: str) -> bool:
    """Every directory on the way searchable by others, the path itself readable by them."""
    current = Path(path)
    try:
        mode = current.stat().st_mode
        if not mode & stat.S_IROTH or (stat.S_ISDIR(mode) and not mode & stat.S_IXOTH):
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in current.parents)
    except OSError:
        return False


def _within(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _describe(interpreter: str) -> tuple[str, str, str]:
    """(base prefix, stdlib directory, "X.Y") of ``interpreter``."""
    if interpreter == runner_interpreter():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return sys.base_prefix, sysconfig.get_path("stdlib"), version
    answer = subprocess.run(
        [interpreter, "-I", "-S", "-c", _ASK_INTERPRETER],
        env={},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    prefix, stdlib, version = json.loads(answer.stdout)
    return str(prefix), str(stdlib), str(version)


def sandbox_mounts(
    interpreter: str | None = None, allowed_packages: tuple[str, ...] = ()
) -> Mounts:
    """The mounts for this host. ValueError for an allowed package that is not installed."""
    executable = os.path.realpath(interpreter or runner_interpreter())
    prefix, stdlib, version = _describe(executable)
    read_only: list[str] = []
    symlinks: list[tuple[str, str]] = []
    for top in ("/lib", "/lib64", "/lib32"):  # merged /usr: symlinks; older systems: dirs
        if os.path.islink(top):
            symlinks.append((os.readlink(top), top))
        elif os.path.isdir(top):
            read_only.append(top)
    read_only += [d for d in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(d)]
    base_lib = os.path.realpath(os.path.join(prefix, "lib"))  # libpython, the stdlib
    if os.path.isdir(base_lib) and not _within(base_lib, read_only):
        read_only.append(base_lib)
    if not _within(executable, read_only):
        read_only.append(executable)
    if os.path.isdir("/usr/share/zoneinfo"):  # for zoneinfo; harmless public data
        read_only.append("/usr/share/zoneinfo")
    stdlib = os.path.realpath(stdlib)
    candidates = [
        f"{stdlib}/site-packages",
        f"{stdlib}/dist-packages",
        "/usr/lib/python3/dist-packages",
        f"/usr/local/lib/python{version}/dist-packages",
        f"/usr/local/lib/python{version}/site-packages",
    ]
    hidden = [c for c in candidates if os.path.isdir(c) and _within(c, read_only)]
    return Mounts(
        read_only=tuple(read_only),
        symlinks=tuple(symlinks),
        hidden=tuple(hidden),
        packages=tuple(_package_mounts(allowed_packages)),
        interpreter=executable,
    )


def _package_mounts(names: tuple[str, ...]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in names:
        spec = importlib.util.find_spec(name)  # only locates it: nothing is imported
        if spec is None or (spec.origin is None and not spec.submodule_search_locations):
            raise ValueError(f"allowed package {name!r} is not installed in the runner")
        if spec.submodule_search_locations:
            paths = [Path(p) for p in spec.submodule_search_locations]
        else:
            assert spec.origin is not None
            paths = [Path(spec.origin)]
        for path in paths:
            found.append((str(path), f"{PACKAGE_DIR}/{path.name}"))
            # Wheels repaired by auditwheel keep their shared libraries beside the package.
            libs = path.with_name(f"{name}.libs")
            if libs.is_dir():
                found.append((str(libs), f"{PACKAGE_DIR}/{libs.name}"))
    return found
