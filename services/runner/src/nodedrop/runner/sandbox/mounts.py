"""What of the host the code sandbox sees: the interpreter and the libraries it loads, read-only,
and the operator's allowed packages; never the runner's own files, its site-packages or /etc."""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

#: Where allowed packages appear in the sandbox (on the sandbox's ``sys.path``).
PACKAGE_DIR = "/sandbox/packages"


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


def interpreter() -> str:
    """The real interpreter behind the runner's (a venv's ``python`` is a symlink to it)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _within(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def sandbox_mounts(allowed_packages: tuple[str, ...] = ()) -> Mounts:
    """The mounts for this host. ValueError for an allowed package that is not installed."""
    read_only: list[str] = []
    symlinks: list[tuple[str, str]] = []
    for top in ("/lib", "/lib64", "/lib32"):  # merged /usr: symlinks; older systems: dirs
        if os.path.islink(top):
            symlinks.append((os.readlink(top), top))
        elif os.path.isdir(top):
            read_only.append(top)
    read_only += [d for d in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(d)]
    base_lib = os.path.realpath(os.path.join(sys.base_prefix, "lib"))  # libpython, stdlib
    if os.path.isdir(base_lib) and not _within(base_lib, read_only):
        read_only.append(base_lib)
    executable = interpreter()
    if not _within(executable, read_only):
        read_only.append(executable)
    if os.path.isdir("/usr/share/zoneinfo"):  # for zoneinfo; harmless public data
        read_only.append("/usr/share/zoneinfo")
    stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        f"{stdlib}/site-packages",
        f"{stdlib}/dist-packages",
        "/usr/lib/python3/dist-packages",
        f"/usr/local/lib/{version}/dist-packages",
        f"/usr/local/lib/{version}/site-packages",
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
