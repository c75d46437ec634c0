"""A live progress bar of one run on stderr, with log lines printed above it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dativo_runtime._cli._render._console import error_console

if TYPE_CHECKING:
    from rich.console import Console

    from dativo_runtime._engine._attempt import ProgressEvent

__all__ = ["progress_bar"]


class _ConsoleStream:
    """A stream that prints log lines above a live progress bar instead of through it."""

    def __init__(self, target: Console) -> None:
        self.target = target

    def write(self, text: str) -> int:
        from rich.text import Text

        if text.strip():
            self.target.print(Text(text.rstrip("\n")), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""

    def isatty(self) -> bool:
        return True


@contextmanager
def progress_bar(enabled: bool, description: str) -> Iterator[Any]:
    """A progress bar on stderr with records, rate and elapsed time; a no-op when disabled.

    Yields:
        A callback taking :class:`ProgressEvent` objects.
    """
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    stderr_console = error_console()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("[bold]{task.fields[records]}[/bold] records"),
        TextColumn("{task.fields[rate]} rec/s"),
        TextColumn("{task.fields[invalid]} invalid"),
        TextColumn("{task.fields[partitions]}"),
        TimeElapsedColumn(),
    )
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    with Progress(*columns, console=stderr_console, transient=True) as progress:
        task = progress.add_task(description, total=None, records=0, rate="0", invalid=0, partitions="")
        previous = [h.stream for h in handlers]
        for handler in handlers:
            handler.setStream(_ConsoleStream(progress.console))
        try:

            def update(event: ProgressEvent) -> None:
                rate = event.records_read / event.elapsed_s if event.elapsed_s > 0 else 0.0
                progress.update(
                    task,
                    total=event.estimate,
                    completed=event.records_read,
                    records=event.records_read,
                    rate=f"{rate:,.0f}",
                    invalid=event.records_invalid,
                    partitions=(
                        f"{event.partitions_done}/{event.partitions_total} partitions"
                        if event.partitions_total
                        else ""
                    ),
                )

            yield update
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                handler.setStream(stream)
