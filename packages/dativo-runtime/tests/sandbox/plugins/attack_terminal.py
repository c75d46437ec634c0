"""Attacks on the person reading ``dativo-run``'s output: text that drives the terminal or forges a line.

Loaded by path by the terminal-output tests; never imported as a test module. Every text
these plugins choose (a check's message, a stream's or a partition's name, an error
message) holds ``ESC [2J`` (clear the screen) and a newline followed by a forged line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    PluginError,
    State,
)

FORGED = "\x1b[2J\x1b[H\nforged: run succeeded"


class TerminalReader(BaseReader):
    """Fails its check and its run with forged text, and names its stream and partitions with it.

    ``config['fail']``: the run raises a ``PluginError`` after reading its partitions.
    """

    __version__ = "1.0.0"

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(False, f"refused{FORGED}")

    def discover(self) -> DiscoveryResult:
        return DiscoveryResult(
            [DiscoveredStream(f"orders{FORGED}", [{"name": f"id{FORGED}", "type": "integer"}])]
        )

    def partitions(self) -> list[Partition]:
        return [Partition(f"p{n}{FORGED}") for n in range(2)]

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"id": 1}]
        if self.config.get("fail"):
            credential = "hunter2" * 2  # not in the source line the error's frames show
            raise PluginError(f"boom{FORGED} with password={credential}")
