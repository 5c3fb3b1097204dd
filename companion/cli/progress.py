"""Progress on stderr for long work (rich's progress display), as restic shows it.

Off when stderr is not a terminal, with --json or --quiet (and TERM=dumb): then every call is a
no-op, so a verb calls it unconditionally. A bar is a callable `bar(done, total)`, the shape the
core's `progress=` hooks take (Scanner.full_scan, Store.snapshot, ...), and has `advance(n)`.
"""

import os
import sys
import threading
from contextlib import contextmanager


class Bar:
    """One task of the display; a no-op without one."""

    def __init__(self, display=None, task=None):
        self._display = display
        self._task = task

    def __call__(self, done: float, total: float | None = None) -> None:
        if self._display is not None:
            self._display.update(self._task, completed=done, **({"total": total} if total else {}))

    def advance(self, n: float = 1) -> None:
        if self._display is not None:
            self._display.advance(self._task, n)

    def total(self, total: float | None) -> None:
        if self._display is not None:
            self._display.update(self._task, total=total)

    def describe(self, text: str) -> None:
        if self._display is not None:
            self._display.update(self._task, description=_short(text))


class Progress:
    def __init__(self, enabled: bool, console=None):
        """console: a rich Console (default: stderr's)."""
        self.enabled = enabled
        self._console = console
        self._display = None
        self._open = 0
        self._lock = threading.Lock()

    @classmethod
    def for_args(cls, args) -> "Progress":
        quiet = getattr(args, "json", False) or getattr(args, "quiet", False)
        return cls(not quiet and _terminal(sys.stderr))

    @contextmanager
    def bar(self, description: str, total: float | None = None, unit: str = "bytes"):
        """A bar for the `with` block (bytes, or `unit="items"`); the display ends with the last bar."""
        if not self.enabled:
            yield Bar()
            return
        display = self._start()
        task = display.add_task(_short(description), total=total, unit=unit)
        try:
            yield Bar(display, task)
        finally:
            display.remove_task(task)
            self._stop()

    def _start(self):
        with self._lock:
            if self._display is None:
                self._display = _display(self._console)
                self._display.start()
            self._open += 1
            return self._display

    def _stop(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._display is not None:
                self._display.stop()
                self._display = None


def _display(console):
    """rich's display (imported only when shown: most commands never need it)."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

    class Amount(DownloadColumn):
        """Bytes as bytes ("1.2/4.0 GB"), items as counts ("3/12")."""

        items = MofNCompleteColumn()

        def render(self, task):
            return self.items.render(task) if task.fields.get("unit") == "items" else super().render(task)

    class Speed(TransferSpeedColumn):
        def render(self, task):
            return "" if task.fields.get("unit") == "items" else super().render(task)

    return Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), Amount(), Speed(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                    transient=True)


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _terminal(stream) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False
