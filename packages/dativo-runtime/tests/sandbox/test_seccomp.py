"""The seccomp policy: syscall numbers, the BPF program and the Docker profile agree."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from dativo_runtime._sandbox._seccomp import (
    _NUMBERS,
    ALLOWED_SYSCALLS,
    KILLED_SYSCALLS,
    SUPPORTED_MACHINES,
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
    for name, number in _NUMBERS[machine].items():
        assert defined.get(name) == number, (machine, name)


@pytest.mark.parametrize("machine", SUPPORTED_MACHINES)
def test_bpf_program_kills_every_listed_syscall(machine):
    program = bpf_program(machine)
    assert len(program) % 8 == 0
    instructions = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    compared = {k for code, _, _, k in instructions if code == 0x15}
    assert {n for name, n in _NUMBERS[machine].items() if name in KILLED_SYSCALLS} <= compared
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
