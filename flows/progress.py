"""Crawl progress for people: a live Rich display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.crawl import CrawlState

log = logging.getLogger("multipolar.crawl")
_reporter: _Reporter | None = None


class _Reporter:
    """Turns checkpoint updates into pages, models, rate and ETA."""

    def __init__(self, live: bool, expected: int | None) -> None:
        self.live, self.expected = live, expected
        self.last_line = 0.0
        self.progress = None
        if live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]crawl[/]"),
                BarColumn(),
                TextColumn("{task.fields[pages]} pages · {task.completed:,.0f} models · {task.fields[rate]} models/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=True,
                console=_stderr_console(),
            )
            self.task = self.progress.add_task("crawl", total=expected, pages=0, rate="0")
            self.progress.start()

    def update(self, state: CrawlState, listings: int) -> None:
        # The crawl's own seconds, over every run that resumed it: not the process's, which may have begun long
        # before (a served run's), nor this run's alone, which holds a resumed crawl's earlier models.
        rate = state.items / max(state.seconds, 1e-6)
        if self.progress is not None:
            self.progress.update(self.task, completed=state.items, pages=state.pages, rate=f"{rate:,.0f}")
            return
        now = time.monotonic()
        if now - self.last_line >= 5 or state.done:
            self.last_line = now
            eta = ""
            if self.expected and rate > 0:
                eta = f", ETA {max(self.expected - state.items, 0) / rate:,.0f}s"
            log.info(
                "crawl: %d pages, %d models, %.0f models/s, listing %d/%d%s",
                state.pages,
                state.items,
                rate,
                min(state.listing + 1, listings),
                listings,
                eta,
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def crawl_progress(expected: int | None = None, live: bool | None = None) -> Iterator[None]:
    """Show crawl progress for the duration of the block."""
    global _reporter
    live = sys.stderr.isatty() if live is None else live
    _reporter = _Reporter(live, expected)
    try:
        yield
    finally:
        _reporter.close()
        _reporter = None


def report_in_lines() -> None:
    """Plain progress lines for every crawl of this process from now on (the process of a served run, whose
    output serve shows)."""
    global _reporter
    _reporter = _Reporter(live=False, expected=None)


def report_crawl(state: CrawlState, listings: int) -> None:
    """Progress callback for the crawl; silent when no display is open."""
    if _reporter is not None:
        _reporter.update(state, listings)
