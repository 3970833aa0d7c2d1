"""A rich progress bar with rate and ETA, or nothing when disabled (CI, pipes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Rate(TextColumn):
    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


@contextmanager
def progress_bar(total: int, description: str, unit: str = "it", enabled: bool = True,
                 completed: int = 0) -> Iterator:
    """Yield `advance(n)`; a no-op when disabled. Drawn on stderr so stdout stays clean."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _Rate(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed)
        yield lambda n=1: progress.advance(task, n)


_console = Console(stderr=True, highlight=False)


def info(message: str) -> None:
    """A status line on stderr (stdout is kept for machine-readable output)."""
    _console.print(message, markup=False)
