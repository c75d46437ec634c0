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

One module, past the usual size, because the two encodings must change together; most of
its length is the syscall tables.
"""

from __future__ import annotations

import errno
import platform
import struct
from typing import Any

__all__ = [
    "ALLOWED_SYSCALLS",
    "KILLED_SYSCALLS",
    "NAMESPACE_CLONE_FLAGS",
    "NETLINK_ROUTE",
    "SOCKET_FAMILIES",
    "SUPPORTED_MACHINES",
    "bpf_program",
    "docker_profile",
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
_AF_UNIX = SOCKET_FAMILIES["AF_UNIX"]
_AF_NETLINK = SOCKET_FAMILIES["AF_NETLINK"]

# Syscall numbers of KILLED_SYSCALLS plus clone/clone3 and socket/socketpair, from the
# kernel's unistd headers (asm/unistd_64.h for x86-64, asm-generic/unistd.h for aarch64).
# A test checks them against the headers when they are installed.
_NUMBERS: dict[str, dict[str, int]] = {
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

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DOCKER_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}

SUPPORTED_MACHINES = tuple(sorted(_NUMBERS))
"""CPU architectures the BPF program can be built for."""

ALLOWED_SYSCALLS: tuple[str, ...] = tuple(
    sorted(
        [
            "accept",
            "accept4",
            "access",
            "alarm",
            "arch_prctl",
            "bind",
            "brk",
            "cachestat",
            "capget",
            "capset",
            "chdir",
            "chmod",
            "chown",
            "clock_getres",
            "clock_gettime",
            "clock_nanosleep",
            "close",
            "close_range",
            "connect",
            "copy_file_range",
            "creat",
            "dup",
            "dup2",
            "dup3",
            "epoll_create",
            "epoll_create1",
            "epoll_ctl",
            "epoll_pwait",
            "epoll_pwait2",
            "epoll_wait",
            "eventfd",
            "eventfd2",
            "execve",
            "execveat",
            "exit",
            "exit_group",
            "faccessat",
            "faccessat2",
            "fadvise64",
            "fallocate",
            "fchdir",
            "fchmod",
            "fchmodat",
            "fchmodat2",
            "fchown",
            "fchownat",
            "fcntl",
            "fdatasync",
            "fgetxattr",
            "flistxattr",
            "flock",
            "fork",
            "fremovexattr",
            "fsetxattr",
            "fstat",
            "fstatfs",
            "fsync",
            "ftruncate",
            "futex",
            "futex_requeue",
            "futex_wait",
            "futex_waitv",
            "futex_wake",
            "futimesat",
            "get_robust_list",
            "get_thread_area",
            "getcpu",
            "getcwd",
            "getdents",
            "getdents64",
            "getegid",
            "geteuid",
            "getgid",
            "getgroups",
            "getitimer",
            "getpeername",
            "getpgid",
            "getpgrp",
            "getpid",
            "getppid",
            "getpriority",
            "getrandom",
            "getresgid",
            "getresuid",
            "getrlimit",
            "getrusage",
            "getsid",
            "getsockname",
            "getsockopt",
            "gettid",
            "gettimeofday",
            "getuid",
            "getxattr",
            "getxattrat",
            "inotify_add_watch",
            "inotify_init",
            "inotify_init1",
            "inotify_rm_watch",
            "io_cancel",
            "io_destroy",
            "io_getevents",
            "io_pgetevents",
            "io_setup",
            "io_submit",
            "ioctl",
            "ioprio_get",
            "ioprio_set",
            "kill",
            "landlock_add_rule",
            "landlock_create_ruleset",
            "landlock_restrict_self",
            "lchown",
            "lgetxattr",
            "link",
            "linkat",
            "listen",
            "listxattr",
            "listxattrat",
            "llistxattr",
            "lremovexattr",
            "lseek",
            "lsetxattr",
            "lstat",
            "madvise",
            "map_shadow_stack",
            "membarrier",
            "memfd_create",
            "mincore",
            "mkdir",
            "mkdirat",
            "mknod",
            "mknodat",
            "mlock",
            "mlock2",
            "mlockall",
            "mmap",
            "mprotect",
            "mq_getsetattr",
            "mq_notify",
            "mq_open",
            "mq_timedreceive",
            "mq_timedsend",
            "mq_unlink",
            "mremap",
            "mseal",
            "msgctl",
            "msgget",
            "msgrcv",
            "msgsnd",
            "msync",
            "munlock",
            "munlockall",
            "munmap",
            "nanosleep",
            "newfstatat",
            "open",
            "openat",
            "openat2",
            "pause",
            "personality",
            "pidfd_open",
            "pidfd_send_signal",
            "pipe",
            "pipe2",
            "pkey_alloc",
            "pkey_free",
            "pkey_mprotect",
            "poll",
            "ppoll",
            "prctl",
            "pread64",
            "preadv",
            "preadv2",
            "prlimit64",
            "pselect6",
            "pwrite64",
            "pwritev",
            "pwritev2",
            "read",
            "readahead",
            "readlink",
            "readlinkat",
            "readv",
            "recvfrom",
            "recvmmsg",
            "recvmsg",
            "remap_file_pages",
            "removexattr",
            "removexattrat",
            "rename",
            "renameat",
            "renameat2",
            "restart_syscall",
            "rmdir",
            "rseq",
            "rt_sigaction",
            "rt_sigpending",
            "rt_sigprocmask",
            "rt_sigqueueinfo",
            "rt_sigreturn",
            "rt_sigsuspend",
            "rt_sigtimedwait",
            "rt_tgsigqueueinfo",
            "sched_get_priority_max",
            "sched_get_priority_min",
            "sched_getaffinity",
            "sched_getattr",
            "sched_getparam",
            "sched_getscheduler",
            "sched_rr_get_interval",
            "sched_setaffinity",
            "sched_setattr",
            "sched_setparam",
            "sched_setscheduler",
            "sched_yield",
            "seccomp",
            "select",
            "semctl",
            "semget",
            "semop",
            "semtimedop",
            "sendfile",
            "sendmmsg",
            "sendmsg",
            "sendto",
            "set_robust_list",
            "set_thread_area",
            "set_tid_address",
            "setfsgid",
            "setfsuid",
            "setgid",
            "setgroups",
            "setitimer",
            "setpgid",
            "setpriority",
            "setregid",
            "setresgid",
            "setresuid",
            "setreuid",
            "setrlimit",
            "setsid",
            "setsockopt",
            "setuid",
            "setxattr",
            "setxattrat",
            "shmat",
            "shmctl",
            "shmdt",
            "shmget",
            "shutdown",
            "sigaltstack",
            "signalfd",
            "signalfd4",
            "splice",
            "stat",
            "statfs",
            "statx",
            "symlink",
            "symlinkat",
            "sync",
            "sync_file_range",
            "syncfs",
            "sysinfo",
            "tee",
            "tgkill",
            "time",
            "timer_create",
            "timer_delete",
            "timer_getoverrun",
            "timer_gettime",
            "timer_settime",
            "timerfd_create",
            "timerfd_gettime",
            "timerfd_settime",
            "times",
            "tkill",
            "truncate",
            "umask",
            "uname",
            "unlink",
            "unlinkat",
            "uretprobe",
            "utime",
            "utimensat",
            "utimes",
            "vfork",
            "vmsplice",
            "wait4",
            "waitid",
            "write",
            "writev",
        ]
    )
)
"""Syscalls the Docker profile allows (``clone`` too, without namespace flags, and ``socket``
and ``socketpair`` for the families of :data:`SOCKET_FAMILIES`)."""

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
_MASK_64 = (1 << 64) - 1


def _machine(machine: str | None) -> str:
    name = _MACHINE_ALIASES.get((machine or platform.machine()).lower())
    if name is None:
        raise ValueError(
            f"no seccomp filter for CPU architecture {machine or platform.machine()!r}; "
            f"supported: {', '.join(SUPPORTED_MACHINES)}"
        )
    return name


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
    arch = _machine(machine)
    numbers = _NUMBERS[arch]
    program = [
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        _insn(_JEQ_K, 1, 0, _AUDIT_ARCH[arch]),
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
        _insn(_JEQ_K, 0, 3, _AF_NETLINK),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARG2_LOW),
        _insn(_JEQ_K, 2, 0, NETLINK_ROUTE),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPROTONOSUPPORT),
        refuse_family,
        allow,
    ]
    socketpair_block = [
        _insn(_JEQ_K, 0, 4, socketpair_nr),
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARG0_LOW),
        _insn(_JEQ_K, 1, 0, _AF_UNIX),
        refuse_family,
        allow,
    ]
    return socket_block + socketpair_block


def _docker_socket_rules() -> list[dict[str, Any]]:
    """The same family checks as libseccomp rules (one comparison per argument and rule).

    Allowed families are matched exactly on the whole 64-bit argument; the refused ones by
    ranges that cover every other value, so each fails with the same errno as under
    bubblewrap (a value that matches no rule at all would fail with the profile's ``EPERM``).
    """

    def cond(index: int, op: str, value: int, value_two: int | None = None) -> dict[str, Any]:
        rule: dict[str, Any] = {"index": index, "value": value, "op": op}
        if value_two is not None:
            rule["valueTwo"] = value_two
        return rule

    def masked(low: int, size: int) -> dict[str, Any]:
        """Match ``low`` to ``low + size - 1`` (``size`` a power of two, ``low`` a multiple of it)."""
        return cond(0, "SCMP_CMP_MASKED_EQ", _MASK_64 & ~(size - 1), low)

    def errno_rule(name: str, code: int, *conditions: dict[str, Any]) -> dict[str, Any]:
        return {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": code, "args": list(conditions)}

    rules: list[dict[str, Any]] = [
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [cond(0, "SCMP_CMP_EQ", family)]}
        for name, family in SOCKET_FAMILIES.items()
        if name != "AF_NETLINK"
    ]
    rules.append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [cond(0, "SCMP_CMP_EQ", _AF_NETLINK), cond(2, "SCMP_CMP_EQ", NETLINK_ROUTE)],
        }
    )
    rules.append(
        errno_rule(
            "socket",
            errno.EPROTONOSUPPORT,
            cond(0, "SCMP_CMP_EQ", _AF_NETLINK),
            cond(2, "SCMP_CMP_NE", NETLINK_ROUTE),
        )
    )
    # Every domain but 1, 2, 10 and 16: 0, 3, 4-7, 8-9, 11, 12-15, and above 16.
    refused = [
        cond(0, "SCMP_CMP_EQ", 0),
        cond(0, "SCMP_CMP_EQ", 3),
        masked(4, 4),
        masked(8, 2),
        cond(0, "SCMP_CMP_EQ", 11),
        masked(12, 4),
        cond(0, "SCMP_CMP_GT", _AF_NETLINK),
    ]
    rules += [errno_rule("socket", errno.EAFNOSUPPORT, c) for c in refused]
    unix_only = [cond(0, "SCMP_CMP_EQ", _AF_UNIX)]
    rules.append({"names": ["socketpair"], "action": "SCMP_ACT_ALLOW", "args": unix_only})
    rules += [
        errno_rule("socketpair", errno.EAFNOSUPPORT, c)
        for c in (cond(0, "SCMP_CMP_EQ", 0), cond(0, "SCMP_CMP_GT", _AF_UNIX))
    ]
    return rules


def docker_profile(machine: str | None = None) -> dict[str, Any]:
    """Return the Docker seccomp profile (``security_opt=["seccomp=<json>"]``) of the same policy.

    Args:
        machine: ``x86_64`` or ``aarch64``; this machine's by default. Only that native
            architecture is listed, so 32-bit compat syscalls are refused.

    Returns:
        The profile as JSON-serialisable data.

    Raises:
        ValueError: If ``machine`` is not supported.
    """
    arch = _machine(machine)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": [_DOCKER_ARCH[arch]],
        "syscalls": [
            {"names": list(ALLOWED_SYSCALLS), "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": NAMESPACE_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
            *_docker_socket_rules(),
            {"names": list(KILLED_SYSCALLS), "action": "SCMP_ACT_KILL_PROCESS"},
        ],
    }
