"""The seccomp policy: syscall numbers, the BPF program and the Docker profile agree."""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from dativo_runtime._sandbox.seccomp import (
    ALLOWED_SYSCALLS,
    KILLED_SYSCALLS,
    NETLINK_ROUTE,
    SOCKET_FAMILIES,
    SUPPORTED_MACHINES,
    SYSCALL_NUMBERS,
    bpf_program,
    docker_profile,
)

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


@pytest.mark.parametrize("machine", SUPPORTED_MACHINES)
def test_syscall_numbers_match_the_kernel_headers(machine):
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} is not installed (linux-libc-dev)")
    defined = {
        name: int(number)
        for name, number in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)", header.read_text())
    }
    for name, number in SYSCALL_NUMBERS[machine].items():
        assert defined.get(name) == number, (machine, name)


@pytest.mark.parametrize("machine", SUPPORTED_MACHINES)
def test_bpf_program_kills_every_listed_syscall(machine):
    program = bpf_program(machine)
    assert len(program) % 8 == 0
    instructions = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    compared = {k for code, _, _, k in instructions if code == 0x15}
    assert {n for name, n in SYSCALL_NUMBERS[machine].items() if name in KILLED_SYSCALLS} <= compared
    assert instructions[-1] == (0x06, 0, 0, 0x7FFF0000)  # the default is allow (a denylist)
    assert len(instructions) < 4096


def test_unknown_machine_is_refused():
    with pytest.raises(ValueError, match="no seccomp filter for CPU architecture 'riscv64'"):
        bpf_program("riscv64")


def test_docker_profile_is_an_allowlist_with_kill_rules():
    profile = docker_profile("x86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64"]
    rules = {rule["action"]: rule for rule in profile["syscalls"] if "args" not in rule}
    assert set(rules["SCMP_ACT_KILL_PROCESS"]["names"]) == set(KILLED_SYSCALLS)
    assert not set(ALLOWED_SYSCALLS) & set(KILLED_SYSCALLS)
    assert "clone" not in ALLOWED_SYSCALLS
    assert "clone3" not in ALLOWED_SYSCALLS
    assert {"read", "write", "openat", "mmap", "futex", "execve"} <= set(ALLOWED_SYSCALLS)


# --- socket families (issue 11, finding 10) -------------------------------------------------

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
RET_ALLOW = 0x7FFF0000
RET_KILL = 0x80000000


def _errno(code: int) -> int:
    return 0x00050000 | code


def run_bpf(program: bytes, machine: str, nr: int, *args: int) -> int:
    """Interpret the classic BPF program on one syscall, as the kernel would (the opcodes it uses)."""
    padded = [a & (1 << 64) - 1 for a in args] + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, AUDIT_ARCH[machine], 0, *padded)
    instructions = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    for _ in range(len(instructions)):  # forward jumps only: at most one pass
        code, jt, jf, k = instructions[pc]
        if code == 0x20:  # ld w abs
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x15:  # jeq k
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:  # jge k
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x45:  # jset k
            pc += 1 + (jt if acc & k else jf)
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")
    raise AssertionError("the program did not return")


ALLOWED_FAMILIES = set(SOCKET_FAMILIES.values())
DOMAINS = [*range(64), 0x1_0000_0001, 0x1_0000_0028, 0xFFFF_FFFF_0000_0002, (1 << 64) - 1]


@pytest.mark.parametrize("machine", SUPPORTED_MACHINES)
def test_bpf_program_creates_only_the_allowed_socket_families(machine):
    program = bpf_program(machine)
    numbers = SYSCALL_NUMBERS[machine]
    for domain in DOMAINS:
        # The kernel reads the domain as an int: only the low 32 bits count, as in the filter.
        low = domain & 0xFFFF_FFFF
        verdict = run_bpf(program, machine, numbers["socket"], domain, 1, 0)
        expected = RET_ALLOW if low in ALLOWED_FAMILIES else _errno(errno.EAFNOSUPPORT)
        assert verdict == expected, (machine, hex(domain), hex(verdict))
        pair = run_bpf(program, machine, numbers["socketpair"], domain, 1, 0, 0)
        assert pair == (RET_ALLOW if low == 1 else _errno(errno.EAFNOSUPPORT)), (machine, hex(domain))
    netlink = SOCKET_FAMILIES["AF_NETLINK"]
    assert run_bpf(program, machine, numbers["socket"], netlink, 3, NETLINK_ROUTE) == RET_ALLOW
    assert run_bpf(program, machine, numbers["socket"], netlink, 3, 1 << 32) == RET_ALLOW  # int 0
    for protocol in (9, 15, 4, 0xFFFF_FFFF):  # audit, kobject uevent, sock diag
        verdict = run_bpf(program, machine, numbers["socket"], netlink, 3, protocol)
        assert verdict == _errno(errno.EPROTONOSUPPORT), (machine, protocol)


@pytest.mark.parametrize("machine", SUPPORTED_MACHINES)
def test_bpf_program_keeps_its_other_rules(machine):
    program = bpf_program(machine)
    numbers = SYSCALL_NUMBERS[machine]
    assert run_bpf(program, machine, numbers["mount"]) == RET_KILL
    assert run_bpf(program, machine, numbers["clone3"]) == _errno(errno.ENOSYS)
    assert run_bpf(program, machine, numbers["clone"], 0x10000000) == _errno(errno.EPERM)  # CLONE_NEWUSER
    assert run_bpf(program, machine, numbers["clone"], 0x003D0F00) == RET_ALLOW  # pthread_create's flags
    assert run_bpf(program, machine, 0) == RET_ALLOW  # read (x86-64) / io_setup (aarch64)
    foreign = struct.unpack("=HBBI", program[8:16])
    assert foreign == (0x15, 1, 0, AUDIT_ARCH[machine])  # any other architecture is killed


def _libseccomp_matches(rule: dict, args: tuple[int, ...]) -> bool:
    """Whether one Docker profile rule matches (conditions ANDed, 64-bit compares, as libseccomp)."""
    for cond in rule.get("args", []):
        value = args[cond["index"]]
        op = cond["op"]
        if op == "SCMP_CMP_EQ":
            ok = value == cond["value"]
        elif op == "SCMP_CMP_NE":
            ok = value != cond["value"]
        elif op == "SCMP_CMP_GT":
            ok = value > cond["value"]
        elif op == "SCMP_CMP_MASKED_EQ":
            ok = value & cond["value"] == cond["valueTwo"]
        else:
            raise AssertionError(f"unexpected operator {op}")
        if not ok:
            return False
    return True


def _docker_verdict(profile: dict, name: str, args: tuple[int, ...]) -> tuple[str, int | None]:
    matching = [r for r in profile["syscalls"] if name in r["names"] and _libseccomp_matches(r, args)]
    actions = {(r["action"], r.get("errnoRet")) for r in matching}
    assert len(actions) <= 1, f"{name}{args}: rules disagree: {actions}"
    if not actions:
        return profile["defaultAction"], profile["defaultErrnoRet"]
    return actions.pop()


def test_docker_profile_creates_only_the_allowed_socket_families():
    profile = docker_profile("x86_64")
    assert "socket" not in ALLOWED_SYSCALLS
    assert "socketpair" not in ALLOWED_SYSCALLS
    for domain in DOMAINS:
        # The profile compares all 64 bits: a domain with high bits set matches no allow rule.
        expected = ("SCMP_ACT_ALLOW", None) if domain in ALLOWED_FAMILIES else ("SCMP_ACT_ERRNO", 97)
        if domain == SOCKET_FAMILIES["AF_NETLINK"]:
            continue
        assert _docker_verdict(profile, "socket", (domain, 1, 0)) == expected, hex(domain)
        pair = ("SCMP_ACT_ALLOW", None) if domain == 1 else ("SCMP_ACT_ERRNO", errno.EAFNOSUPPORT)
        assert _docker_verdict(profile, "socketpair", (domain, 1, 0)) == pair, hex(domain)
    netlink = SOCKET_FAMILIES["AF_NETLINK"]
    assert _docker_verdict(profile, "socket", (netlink, 3, 0)) == ("SCMP_ACT_ALLOW", None)
    for protocol in (9, 15, 1 << 32):
        verdict = _docker_verdict(profile, "socket", (netlink, 3, protocol))
        assert verdict == ("SCMP_ACT_ERRNO", errno.EPROTONOSUPPORT), protocol
