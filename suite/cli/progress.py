"""Signs of life for long CLI work (base image, build and push, a release being followed): on a
terminal a rich spinner with the elapsed time and the latest news; elsewhere (CI logs, pipes)
one plain line per piece of news, no control characters; nothing at all when ``quiet``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Activity:
    def __init__(self, title: str, *, stream: IO[str] | None = None, quiet: bool = False,
                 interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.title, self.quiet, self.clock = title, quiet, clock
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.began = 0.0
        self.last = ""
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> Activity:
        self.began = self.clock()
        if self.quiet:
            return self
        if self.interactive:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=Console(file=self.stream),
                                      transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.title)  # type: ignore[assignment]
        else:
            self._line(f"{self.title} ...")
        return self

    def update(self, news: str) -> None:
        """Latest news; repeated news is shown once."""
        if news == self.last:
            return
        self.last = news
        if self.quiet:
            return
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"{self.title}: {news}")
        else:
            self._line(f"  {news}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
        if not self.quiet:
            took = self.clock() - self.began
            self._line(f"{self.title}: {'failed' if kind else 'done'} after {took:.0f} s")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def activity(title: str, **kwargs: object) -> Activity:
    return Activity(title, **kwargs)  # type: ignore[arg-type]
