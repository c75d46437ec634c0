"""The seccomp policy as a classic BPF program, for bubblewrap's ``--seccomp FD``.

A *denylist* with the default ``ALLOW``: classic BPF needs syscall numbers, which
:mod:`._rules` carries for x86-64 and aarch64 only.
"""

from __future__ import annotations

import errno
import struct

from dativo_runtime._sandbox.seccomp._rules import (
    AF_NETLINK,
    AF_UNIX,
    AUDIT_ARCH,
    KILLED_SYSCALLS,
    NAMESPACE_CLONE_FLAGS,
    NETLINK_ROUTE,
    SOCKET_FAMILIES,
    SYSCALL_NUMBERS,
    machine_name,
)

__all__ = ["bpf_program"]

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_X32_SYSCALL_BIT = 0x40000000
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16  # args[0], low 32 bits: both supported machines are little-endian.
_OFFSET_ARG2_LOW = 32  # args[2], low 32 bits (the kernel reads both as int, so the high half is moot).


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def bpf_program(machine: str | None = None) -> bytes:
    """Return the seccomp filter for bubblewrap's ``--seccomp FD`` as raw ``sock_filter`` structs.

    Args:
        machine: ``x86_64`` or ``aarch64`` (aliases ``amd64``/``arm64``); this machine's by default.

    Returns:
        The classic BPF program, 8 bytes per instruction.

    Raises:
        ValueError: If there is no syscall table for ``machine``.
    """
    arch = machine_name(machine)
    numbers = SYSCALL_NUMBERS[arch]
    program = [
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        _insn(_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_NR),
    ]
    if arch == "x86_64":
        program += [_insn(_JGE_K, 0, 1, _X32_SYSCALL_BIT), _insn(_RET_K, 0, 0, _RET_KILL_PROCESS)]
    for name in KILLED_SYSCALLS:
        number = numbers.get(name)
        if number is not None:
            program += [_insn(_JEQ_K, 0, 1, number), _insn(_RET_K, 0, 0, _RET_KILL_PROCESS)]
    program += [
        _insn(_JEQ_K, 0, 1, numbers["clone3"]),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        _insn(_JEQ_K, 0, 4, numbers["clone"]),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARG0_LOW),
        _insn(_JSET_K, 0, 1, NAMESPACE_CLONE_FLAGS),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        _insn(_RET_K, 0, 0, _RET_ALLOW),
    ]
    program += _socket_rules(numbers["socket"], numbers["socketpair"])
    program.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(program)


def _socket_rules(socket_nr: int, socketpair_nr: int) -> list[bytes]:
    """The family checks of ``socket`` and ``socketpair``; the accumulator holds the syscall number.

    Each block ends in a return; a call that is neither falls through to what follows.
    """
    allowed = [SOCKET_FAMILIES[name] for name in ("AF_UNIX", "AF_INET", "AF_INET6")]
    refuse_family = _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EAFNOSUPPORT)
    allow = _insn(_RET_K, 0, 0, _RET_ALLOW)
    # socket: [0] nr? [1] load domain [2..4] allowed families [5] netlink? [6] load protocol
    # [7] NETLINK_ROUTE? [8] EPROTONOSUPPORT [9] EAFNOSUPPORT [10] allow
    socket_block = [
        _insn(_JEQ_K, 0, 10, socket_nr),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARG0_LOW),
        *[_insn(_JEQ_K, 7 - i, 0, family) for i, family in enumerate(allowed)],
        _insn(_JEQ_K, 0, 3, AF_NETLINK),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARG2_LOW),
        _insn(_JEQ_K, 2, 0, NETLINK_ROUTE),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPROTONOSUPPORT),
        refuse_family,
        allow,
    ]
    socketpair_block = [
        _insn(_JEQ_K, 0, 4, socketpair_nr),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARG0_LOW),
        _insn(_JEQ_K, 1, 0, AF_UNIX),
        refuse_family,
        allow,
    ]
    return socket_block + socketpair_block
