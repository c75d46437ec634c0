"""The seccomp policy's tables: which syscalls kill, which socket families exist, the syscall numbers.

Both encodings (:mod:`._bpf` for bubblewrap, :mod:`._docker_profile` for Docker) are built
from these, so the two backends enforce one policy.
"""

from __future__ import annotations

import platform

__all__ = [
    "AF_NETLINK",
    "AF_UNIX",
    "AUDIT_ARCH",
    "DOCKER_ARCH",
    "KILLED_SYSCALLS",
    "NAMESPACE_CLONE_FLAGS",
    "NETLINK_ROUTE",
    "SOCKET_FAMILIES",
    "SUPPORTED_MACHINES",
    "SYSCALL_NUMBERS",
    "machine_name",
]

KILLED_SYSCALLS: tuple[str, ...] = (
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "chroot",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "memfd_secret",
    "modify_ldt",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pidfd_getfd",
    "pivot_root",
    "process_madvise",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "_sysctl",
)
"""Syscalls that end the plugin with ``SIGSYS`` (reason ``syscall_blocked``)."""

NAMESPACE_CLONE_FLAGS = 0x7E020000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: refused for ``clone``."""

SOCKET_FAMILIES: dict[str, int] = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}
"""The address families ``socket`` may create (Linux numbers); ``socketpair`` only ``AF_UNIX``."""
NETLINK_ROUTE = 0
"""The one netlink protocol allowed (routing and addresses, for ``getaddrinfo``)."""
AF_UNIX = SOCKET_FAMILIES["AF_UNIX"]
AF_NETLINK = SOCKET_FAMILIES["AF_NETLINK"]

# Syscall numbers of KILLED_SYSCALLS plus clone/clone3 and socket/socketpair, from the
# kernel's unistd headers (asm/unistd_64.h for x86-64, asm-generic/unistd.h for aarch64).
# A test checks them against the headers when they are installed.
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "acct": 163, "add_key": 248, "adjtimex": 159, "bpf": 321, "chroot": 161,
        "clock_adjtime": 305, "clock_settime": 227, "clone": 56, "clone3": 435,
        "create_module": 174, "delete_module": 176, "fanotify_init": 300, "finit_module": 313,
        "fsconfig": 431, "fsmount": 432, "fsopen": 430, "fspick": 433, "get_kernel_syms": 177,
        "init_module": 175, "io_uring_enter": 426, "io_uring_register": 427, "io_uring_setup": 425,
        "ioperm": 173, "iopl": 172, "kcmp": 312, "kexec_file_load": 320, "kexec_load": 246,
        "keyctl": 250, "lookup_dcookie": 212, "memfd_secret": 447, "modify_ldt": 154, "mount": 165,
        "mount_setattr": 442, "move_mount": 429, "move_pages": 279, "name_to_handle_at": 303,
        "nfsservctl": 180, "open_by_handle_at": 304, "open_tree": 428, "perf_event_open": 298,
        "pidfd_getfd": 438, "pivot_root": 155, "process_madvise": 440, "process_vm_readv": 310,
        "process_vm_writev": 311, "ptrace": 101, "query_module": 178, "quotactl": 179,
        "quotactl_fd": 443, "reboot": 169, "request_key": 249, "setns": 308, "settimeofday": 164,
        "socket": 41, "socketpair": 53, "swapoff": 168, "swapon": 167, "syslog": 103,
        "umount2": 166, "unshare": 272, "uselib": 134, "userfaultfd": 323, "ustat": 136,
        "vhangup": 153, "_sysctl": 156,
    },
    "aarch64": {
        "acct": 89, "add_key": 217, "adjtimex": 171, "bpf": 280, "chroot": 51,
        "clock_adjtime": 266, "clock_settime": 112, "clone": 220, "clone3": 435,
        "delete_module": 106, "fanotify_init": 262, "finit_module": 273, "fsconfig": 431,
        "fsmount": 432, "fsopen": 430, "fspick": 433, "init_module": 105, "io_uring_enter": 426,
        "io_uring_register": 427, "io_uring_setup": 425, "kcmp": 272, "kexec_file_load": 294,
        "kexec_load": 104, "keyctl": 219, "lookup_dcookie": 18, "memfd_secret": 447, "mount": 40,
        "mount_setattr": 442, "move_mount": 429, "move_pages": 239, "name_to_handle_at": 264,
        "nfsservctl": 42, "open_by_handle_at": 265, "open_tree": 428, "perf_event_open": 241,
        "pidfd_getfd": 438, "pivot_root": 41, "process_madvise": 440, "process_vm_readv": 270,
        "process_vm_writev": 271, "ptrace": 117, "quotactl": 60, "quotactl_fd": 443, "reboot": 142,
        "request_key": 218, "setns": 268, "settimeofday": 170, "socket": 198, "socketpair": 199,
        "swapoff": 225, "swapon": 224, "syslog": 116, "umount2": 39, "unshare": 97,
        "userfaultfd": 282, "vhangup": 58,
    },
}  # fmt: skip

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
DOCKER_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}

SUPPORTED_MACHINES = tuple(sorted(SYSCALL_NUMBERS))
"""CPU architectures the BPF program can be built for."""


def machine_name(machine: str | None) -> str:
    """The canonical name (``x86_64``, ``aarch64``) of ``machine``, this machine's by default.

    Raises:
        ValueError: If there is no syscall table for it.
    """
    name = _MACHINE_ALIASES.get((machine or platform.machine()).lower())
    if name is None:
        raise ValueError(
            f"no seccomp filter for CPU architecture {machine or platform.machine()!r}; "
            f"supported: {', '.join(SUPPORTED_MACHINES)}"
        )
    return name
