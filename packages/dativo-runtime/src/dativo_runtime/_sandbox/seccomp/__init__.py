"""The seccomp policy of both sandbox backends, as a BPF program (bubblewrap) and a Docker profile.

One policy, two encodings:

* :data:`KILLED_SYSCALLS` (mount, ptrace, the kernel keyring, module loading, ``unshare``,
  ``setns``, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``kexec``...) end the plugin
  at once with ``SIGSYS`` (``SECCOMP_RET_KILL_PROCESS``); the host reports a
  ``SandboxError`` with reason ``syscall_blocked``. Killing rather than failing with
  ``EPERM`` makes a violation visible in the run's result instead of being swallowed by
  a plugin's ``except OSError``.
* ``clone`` with any namespace flag fails with ``EPERM``, and ``clone3`` (whose flags a
  filter cannot read) with ``ENOSYS`` so that the C library falls back to ``clone``.
* ``socket`` creates only the families of :data:`SOCKET_FAMILIES` (``AF_UNIX``,
  ``AF_INET``, ``AF_INET6``, and ``AF_NETLINK`` with protocol ``NETLINK_ROUTE`` alone,
  which the C library's ``getaddrinfo`` reads addresses with); any other family
  (``AF_VSOCK``, ``AF_PACKET``, ``AF_BLUETOOTH``, ``AF_ALG``...) fails with
  ``EAFNOSUPPORT``, another netlink protocol with ``EPROTONOSUPPORT``, and ``socketpair``
  of another family than ``AF_UNIX`` with ``EAFNOSUPPORT``: errors, as on a kernel without
  that family, not kills, because libraries probe for families and carry on.
* On x86-64, the x32 ABI and foreign architectures (32-bit ``int 0x80`` calls) are killed.

The bubblewrap program (:func:`bpf_program`) is a *denylist* with the default ``ALLOW``:
classic BPF needs syscall numbers, which this module carries for x86-64 and aarch64
only. The Docker profile (:func:`docker_profile`) is an *allowlist* like Docker's own
default (anything not listed fails with ``EPERM``) plus the kill rules above, so it is
stricter than Docker's default: ``ptrace`` and ``process_vm_readv`` are killed, which
Docker's default allows.

The policy's tables are :mod:`._rules`, the encodings :mod:`._bpf` and
:mod:`._docker_profile`; a test checks that they agree.
"""

from __future__ import annotations

from dativo_runtime._sandbox.seccomp._bpf import bpf_program
from dativo_runtime._sandbox.seccomp._docker_profile import ALLOWED_SYSCALLS, docker_profile
from dativo_runtime._sandbox.seccomp._rules import (
    KILLED_SYSCALLS,
    NAMESPACE_CLONE_FLAGS,
    NETLINK_ROUTE,
    SOCKET_FAMILIES,
    SUPPORTED_MACHINES,
    SYSCALL_NUMBERS,
)

__all__ = [
    "ALLOWED_SYSCALLS",
    "KILLED_SYSCALLS",
    "NAMESPACE_CLONE_FLAGS",
    "NETLINK_ROUTE",
    "SOCKET_FAMILIES",
    "SUPPORTED_MACHINES",
    "SYSCALL_NUMBERS",
    "bpf_program",
    "docker_profile",
]
