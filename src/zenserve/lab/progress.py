"""How `zenserve compare` shows its progress: rich bars on a terminal, plain lines otherwise."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

# Description, bar, done/total, elapsed, remaining: one line of an 80-column terminal.
DESCRIPTION_WIDTH = 36
BAR_WIDTH = 14


class ProgressReporter:
    """Two bars: the whole comparison (titled by its section) and what is measured now."""

    def __init__(self, console: Console, total_steps: int) -> None:
        self.console = console
        self.total_steps = total_steps
        self.bars: Progress | None = None
        self.overall = TaskID(0)
        self.current = TaskID(0)

    def __enter__(self) -> ProgressReporter:
        if self.console.is_terminal:
            description = Column(width=DESCRIPTION_WIDTH, no_wrap=True, overflow="ellipsis")
            self.bars = Progress(
                TextColumn("{task.description}", table_column=description),
                BarColumn(bar_width=BAR_WIDTH), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True)
            self.bars.__enter__()
            self.overall = self.bars.add_task("starting", total=self.total_steps)
            self.current = self.bars.add_task("", total=1)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.bars is not None:
            self.bars.__exit__(kind, value, traceback)

    def section(self, title: str, steps: int) -> None:
        """A new section: it titles the overall bar; the second bar starts again."""
        if self.bars is not None:
            self.bars.update(self.overall, description=title)
            self.bars.reset(self.current, total=max(1, steps), description="")
        else:
            self.console.print(f"{title} ({steps} steps)", highlight=False)

    def step(self, text: str) -> None:
        """Show what is being measured now."""
        if self.bars is not None:
            self.bars.update(self.current, description=text)

    def advance(self, steps: int = 1) -> None:
        """Move both bars on."""
        if self.bars is not None and steps:
            self.bars.advance(self.current, steps)
            self.bars.advance(self.overall, steps)

    def warn(self, text: str) -> None:
        """A warning line above the bars."""
        self.console.print(f"warning: {text}", style="yellow", highlight=False)
