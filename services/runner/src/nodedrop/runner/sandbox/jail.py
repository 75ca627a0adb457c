"""Running one job in a fresh sandbox and getting its reply back, whatever the code does.

One process per attempt, never reused: no job can see another's data, and nothing a job leaves
behind (a thread, a file in /tmp, a changed module) outlives it. The job goes in on stdin, the
reply comes out on stdout, read up to :attr:`SandboxSettings.max_reply_bytes`; stderr is kept
only as a short tail for the error message. The sandbox is killed (with everything in its PID
namespace: bwrap's ``--die-with-parent`` and the namespace's init) when it runs past the wall
limit, replies too much, or when the attempt is cancelled or times out (the runner cancels the
task running the node; :meth:`Jail.run` kills the process before it lets the cancel through).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

from nodedrop.runner.sandbox import seccomp
from nodedrop.runner.sandbox.command import (
    bootstrap_source,
    bwrap_command,
    import_paths,
    process_command,
    tools_missing,
)
from nodedrop.runner.sandbox.mounts import Mounts, sandbox_mounts
from nodedrop.runner.sandbox.settings import SandboxSettings

#: Characters of stderr kept for an error message.
STDERR_TAIL = 2000
_CHUNK = 1 << 16


class SandboxUnavailableError(Exception):
    """The sandbox cannot run on this host (bwrap missing, user namespaces refused, ...)."""


class SandboxLimitError(Exception):
    """The code used more than it may: CPU time, wall time or reply size."""


@dataclass(frozen=True)
class Finished:
    """A sandbox that ended by itself: its reply (possibly empty), exit status, stderr tail."""

    reply: bytes
    returncode: int
    stderr: str


class Jail:
    """Runs jobs in sandboxes as :class:`SandboxSettings` say. Mounts and the seccomp program
    are worked out on first use (no I/O at import or construction)."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._mounts: Mounts | None = None
        self._as_nobody: bool | None = None
        self._bootstrap: str | None = None

    def unavailable(self) -> str | None:
        """Why this host cannot run the configured sandbox, or None."""
        missing = tools_missing(self.settings)
        if missing:
            return (
                f"{' and '.join(missing)} not found: install bubblewrap (Debian: apt-get install "
                "bubblewrap) or set NODEDROP_CODE_SANDBOX=process (weaker, docs/security.md)"
            )
        if self.settings.mode == "bwrap" and not seccomp.supported():
            return "no seccomp filter for this machine's architecture (x86_64 and aarch64 only)"
        return None

    def mounts(self) -> Mounts:
        if self._mounts is None:
            self._mounts = sandbox_mounts(self.settings.python, self.settings.allowed_packages)
        return self._mounts

    def drops_to_nobody(self) -> bool:
        """A runner run as root gives the sandbox the host's ``nobody``, when that user can
        read the interpreter (not one under /root); otherwise the sandbox is the host's root
        without capabilities, in its own user namespace, which the runner warns about."""
        if self._as_nobody is None:  # worked out once: it stats every mounted path
            self._as_nobody = os.geteuid() == 0 and self.mounts().readable_by_anyone()
        return self._as_nobody

    def import_paths(self) -> list[str]:
        return import_paths(self.mounts(), self.settings.mode)

    async def run(self, job: bytes) -> Finished:
        problem = self.unavailable()
        if problem is not None:
            raise SandboxUnavailableError(problem)
        if self._bootstrap is None:
            self._bootstrap = bootstrap_source()
        read_fd: int | None = None
        if self.settings.mode == "bwrap":
            # The filter goes to bwrap through a pipe; it is a few hundred bytes, less than a
            # pipe holds, so writing it all before bwrap starts cannot block.
            read_fd, write_fd = os.pipe()
            os.write(write_fd, seccomp.filter_program())
            os.close(write_fd)
            argv = bwrap_command(
                self.settings,
                self.mounts(),
                self._bootstrap,
                read_fd,
                drop_to_nobody=self.drops_to_nobody(),
            )
        else:
            argv = process_command(self.settings, self.mounts().interpreter, self._bootstrap)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},  # nothing of the runner's environment, in any process of the sandbox
                cwd="/",
                pass_fds=() if read_fd is None else (read_fd,),
                start_new_session=True,  # one process group to kill; no signals from our tty
            )
        finally:
            if read_fd is not None:
                os.close(read_fd)
        try:
            async with asyncio.timeout(self.settings.wall_s):
                return await _exchange(process, job, self.settings.max_reply_bytes)
        except TimeoutError:
            raise SandboxLimitError(
                f"the code ran longer than {self.settings.wall_s:g} s (the sandbox's wall-time "
                "limit, three times its CPU limit)"
            ) from None
        finally:
            await _kill(process)


async def _exchange(process: asyncio.subprocess.Process, job: bytes, limit: int) -> Finished:
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None

    async def feed() -> None:
        assert process.stdin is not None
        # The code may exit, or close stdin, before it reads everything: not our failure.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(job)
            await process.stdin.drain()
            process.stdin.close()

    async def read_reply() -> bytes:
        assert process.stdout is not None
        chunks: list[bytes] = []
        size = 0
        while chunk := await process.stdout.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise SandboxLimitError(f"the code's result is over {limit:,} bytes of JSON")
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_stderr_tail() -> str:
        assert process.stderr is not None
        tail = b""
        while chunk := await process.stderr.read(_CHUNK):
            tail = (tail + chunk)[-STDERR_TAIL:]
        return tail.decode("utf-8", "replace")

    _fed, reply, stderr = await asyncio.gather(feed(), read_reply(), read_stderr_tail())
    returncode = await process.wait()
    return Finished(reply, returncode, stderr)


async def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the sandbox's process group (prlimit became bwrap, whose death takes its PID
    namespace with it) and reap it; a no-op once it has ended."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        # Cancelled meanwhile or not, the process must not be left a zombie.
        await asyncio.shield(process.wait())
