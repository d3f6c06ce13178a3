"""A seccomp filter (classic BPF, pure) that keeps a project of a root hub from making user
namespaces, which bubblewrap's ``--disable-userns`` cannot do without a user namespace
around the project.

Why: a user namespace gives its maker every capability inside it, and with them the parts
of the kernel that are otherwise root's (mounting, netfilter, ...): a larger attack surface
than a project needs. The filter answers ``unshare`` and ``clone`` with ``CLONE_NEWUSER``
with EPERM, ``clone3`` (whose flags a filter cannot read) with ENOSYS, so that the C
library falls back to ``clone``, as Flatpak does; system calls of another ABI (i386, x32)
get ENOSYS. Everything else is allowed. Only for the architectures in `ARCHITECTURES`.
"""

from __future__ import annotations

import errno
import platform
import struct

CLONE_NEWUSER = 0x10000000
# machine: (AUDIT_ARCH_*, unshare, clone, clone3)
ARCHITECTURES = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}
_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000
# struct seccomp_data: nr, arch, instruction_pointer, args[6] (the low half of args[0]).
_NR, _ARCH, _ARG0 = 0, 4, 16


def no_user_namespaces(machine: str | None = None) -> bytes | None:
    """The filter for `machine` (default: this one) as bubblewrap's ``--seccomp`` reads it
    (an array of ``struct sock_filter``), or None for an architecture not known here."""
    known = ARCHITECTURES.get(machine or platform.machine())
    if known is None:
        return None
    arch, unshare, clone, clone3 = known
    program = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ, 0, 10, arch),  # another ABI: to ENOSYS
        (_LD_W_ABS, 0, 0, _NR),
        (_JGE, 8, 0, _X32_BIT),  # x32: to ENOSYS
        (_JEQ, 7, 0, clone3),  # to ENOSYS
        (_JEQ, 2, 0, unshare),  # to the flags
        (_JEQ, 1, 0, clone),  # to the flags
        (_RET, 0, 0, _ALLOW),
        (_LD_W_ABS, 0, 0, _ARG0),
        (_JSET, 1, 0, CLONE_NEWUSER),  # to EPERM
        (_RET, 0, 0, _ALLOW),
        (_RET, 0, 0, _ERRNO | errno.EPERM),
        (_RET, 0, 0, _ERRNO | errno.ENOSYS),
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
