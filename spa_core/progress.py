"""Progress bars for slow steps, on stderr; silent when not a terminal or when quiet.

A tiny API over `tqdm <https://tqdm.github.io>`_ that library code can call freely:
when no terminal is attached (tests, pipes, CI) or ``spa --quiet`` was given, nothing is
drawn, and every step's duration is logged at DEBUG level (``spa --verbose``)::

    from spa_core import progress

    with progress.steps(["analyse", "score", "validate"], desc="spa prune") as run:
        with run.step("analyse"):
            analysis = analyze_onnx(model)
        ...

    with progress.step("hessians"):            # a sub-step of the running steps, if any
        for batch in progress.track(batches, "calibration", total=len(batches)):
            ...

An opaque step (one call that takes a while) shows a ticking clock, so the user sees
that something is still happening.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_quiet: bool | None = None
_active: list[Steps] = []
_TICK_S = 0.25


def configure(quiet: bool | None = None) -> None:
    """Force progress output off (``quiet=True``) or back to automatic (``None``)."""
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    """Whether bars are drawn: not quiet and stderr is a terminal."""
    if _quiet:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def _tqdm(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)


class _Ticker:
    """Refreshes a bar from a daemon thread so the elapsed time keeps moving."""

    def __init__(self, bar) -> None:
        self._bar = bar
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spa-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(_TICK_S):
            try:
                self._bar.refresh()
            except Exception:  # a closed bar or stream: stop ticking quietly
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


class Steps:
    """A run of named steps shown as one bar (``[2/5] analyse``)."""

    def __init__(self, names: Sequence[str], desc: str = "") -> None:
        self.names = list(names)
        self.desc = desc
        self.timings: dict[str, float] = {}
        self._bar = None
        self._ticker: _Ticker | None = None
        self._current: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> Steps:
        if enabled():
            self._bar = _tqdm(
                total=len(self.names),
                desc=self.desc,
                leave=False,
                bar_format="{desc} [{n_fmt}/{total_fmt}] {postfix} {elapsed}",
            )
            self._ticker = _Ticker(self._bar)
        return self

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._bar is not None:
            self._bar.close()
        self._bar = self._ticker = None

    # ------------------------------------------------------------------ steps
    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one step; it is shown while it runs and counted when it ends."""
        if name not in self.names:
            self.names.append(name)
            if self._bar is not None:
                self._bar.total = len(self.names)
        outer, self._current = self._current, name
        self._show(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            log.debug("%s%s: %.2f s", f"{self.desc}: " if self.desc else "", name, elapsed)
            self._current = outer
            if self._bar is not None:
                self._bar.update(1)
            self._show(outer or "")

    def note(self, text: str) -> None:
        """Show a detail next to the current step (``score: batch 3``)."""
        self._show(f"{self._current}: {text}" if self._current else text)

    def _show(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)


@contextmanager
def steps(names: Sequence[str], desc: str = "") -> Iterator[Steps]:
    """A bar over named steps; yields a :class:`Steps` whose ``step(name)`` times each."""
    run = Steps(names, desc).open()
    _active.append(run)
    try:
        yield run
    finally:
        _active.remove(run)
        run.close()


@contextmanager
def step(name: str) -> Iterator[None]:
    """A sub-step of the innermost running :class:`Steps` (shown as a note), else timed only.

    Library code (export, OBSPA, scoring) can call this without knowing whether a bar
    is drawn.
    """
    run = _active[-1] if _active else None
    if run is not None:
        run.note(name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        log.debug("%s: %.2f s", name, time.perf_counter() - t0)
        if run is not None:
            run.note("")


def track(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a bar of its own (removed when done); plain iteration when disabled."""
    if not enabled():
        yield from iterable
        return
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = _tqdm(total=total, desc=desc, unit=unit, leave=False)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()
