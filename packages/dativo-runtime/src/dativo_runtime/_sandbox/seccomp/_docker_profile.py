"""The seccomp policy as a Docker profile (``security_opt=["seccomp=<json>"]``).

An *allowlist* like Docker's own default (anything not listed fails with ``EPERM``) plus
the kill rules of :mod:`._rules`, so it is stricter than Docker's default: ``ptrace`` and
``process_vm_readv`` are killed, which Docker's default allows.
"""

from __future__ import annotations

import errno
from typing import Any

from dativo_runtime._sandbox.seccomp._rules import (
    AF_NETLINK,
    AF_UNIX,
    DOCKER_ARCH,
    KILLED_SYSCALLS,
    NAMESPACE_CLONE_FLAGS,
    NETLINK_ROUTE,
    SOCKET_FAMILIES,
    machine_name,
)

__all__ = ["ALLOWED_SYSCALLS", "docker_profile"]

_MASK_64 = (1 << 64) - 1

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
            "args": [cond(0, "SCMP_CMP_EQ", AF_NETLINK), cond(2, "SCMP_CMP_EQ", NETLINK_ROUTE)],
        }
    )
    rules.append(
        errno_rule(
            "socket",
            errno.EPROTONOSUPPORT,
            cond(0, "SCMP_CMP_EQ", AF_NETLINK),
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
        cond(0, "SCMP_CMP_GT", AF_NETLINK),
    ]
    rules += [errno_rule("socket", errno.EAFNOSUPPORT, c) for c in refused]
    unix_only = [cond(0, "SCMP_CMP_EQ", AF_UNIX)]
    rules.append({"names": ["socketpair"], "action": "SCMP_ACT_ALLOW", "args": unix_only})
    rules += [
        errno_rule("socketpair", errno.EAFNOSUPPORT, c)
        for c in (cond(0, "SCMP_CMP_EQ", 0), cond(0, "SCMP_CMP_GT", AF_UNIX))
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
    arch = machine_name(machine)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": [DOCKER_ARCH[arch]],
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
