"""The seccomp filter of the code sandbox: no new processes, and none of the system calls a
sandboxed program never needs but an escape would (ptrace, mount, namespaces, keyrings, bpf,
io_uring, modules, ...).

Written out as classic BPF here, because PyPI has no well-kept binding of libseccomp; the
program is short and fixed, and the escape tests (tests/integration/runner/test_code_escapes.py)
prove what it denies. ``fork``, ``vfork`` and a ``clone`` without ``CLONE_THREAD`` fail with
``EAGAIN``, so the sandbox holds one process (threads still work; they are bounded by the
address-space limit, each reserving its stack). ``clone3`` fails with ``ENOSYS``, which makes
glibc fall back to ``clone``, whose flags a filter can read (``clone3`` passes them in memory).
bwrap loads the program (``--seccomp FD``) just before it executes the interpreter.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# BPF instruction classes and fields (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
# Return values (linux/seccomp.h).
_KILL_PROCESS = 0x80000000
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
# Offsets in struct seccomp_data: nr, arch, instruction pointer, then the six arguments.
_NR = 0
_ARCH = 4
_ARG0_LOW = 16  # little-endian: the low 32 bits of the first argument (clone's flags)
_CLONE_THREAD = 0x00010000
#: x86_64's x32 ABI numbers its calls from this bit on; none of them is allowed.
_X32_SYSCALL_BIT = 0x40000000

#: Fail as a process table that is full would (what programs expect of fork).
_NEW_PROCESS_NAMES = ("fork", "vfork")
#: Fail as a call an unprivileged process may not make.
_DENIED_NAMES = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
    "pivot_root", "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "acct", "open_by_handle_at", "syslog",
)  # fmt: skip


@dataclass(frozen=True)
class _Arch:
    audit: int  # AUDIT_ARCH_*: what seccomp_data.arch holds
    column: int  # which number of :data:`_NUMBERS` is this architecture's
    x32: bool


_ARCHES = {"x86_64": _Arch(0xC000003E, 0, x32=True), "aarch64": _Arch(0xC00000B7, 1, x32=False)}

#: System call numbers on (x86_64, aarch64), from asm/unistd_64.h and asm-generic/unistd.h;
#: aarch64 has no fork or vfork.
_NUMBERS: dict[str, tuple[int | None, int | None]] = {
    "fork": (57, None),
    "vfork": (58, None),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "unshare": (272, 97),
    "setns": (308, 268),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "kexec_load": (246, 104),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "acct": (163, 89),
    "open_by_handle_at": (304, 265),
    "syslog": (103, 116),
}


_CLONE = (56, 220)
_CLONE3 = (435, 435)


def _number(arch: _Arch, name: str) -> int | None:
    return _NUMBERS[name][arch.column]


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in _ARCHES


def filter_program(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as ``struct sock_filter[]`` (what bwrap's
    ``--seccomp`` reads). KeyError for an architecture it does not know."""
    arch = _ARCHES[machine or platform.machine()]
    program = [
        _op(_LD_W_ABS, _ARCH),
        _op(_JEQ_K, arch.audit, jt=1),
        _op(_RET_K, _KILL_PROCESS),  # another ABI: its numbers mean other calls
        _op(_LD_W_ABS, _NR),
    ]
    if arch.x32:
        program += [_op(_JGE_K, _X32_SYSCALL_BIT, jf=1), _op(_RET_K, _ERRNO | errno.ENOSYS)]
    for names, error in ((_NEW_PROCESS_NAMES, errno.EAGAIN), (_DENIED_NAMES, errno.EPERM)):
        for name in names:
            number = _number(arch, name)
            if number is not None:
                program += [_op(_JEQ_K, number, jf=1), _op(_RET_K, _ERRNO | error)]
    program += [
        _op(_JEQ_K, _CLONE3[arch.column], jf=1),
        _op(_RET_K, _ERRNO | errno.ENOSYS),
        _op(_JEQ_K, _CLONE[arch.column], jf=3),
        _op(_LD_W_ABS, _ARG0_LOW),
        _op(_JSET_K, _CLONE_THREAD, jt=1),
        _op(_RET_K, _ERRNO | errno.EAGAIN),  # a new process, not a thread
        _op(_RET_K, _ALLOW),
    ]
    return b"".join(program)
