"""Progress bars: drawn only on a terminal and when not quiet; steps are timed either way."""

from __future__ import annotations

import io
import logging

import pytest

from spa_core import progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def automatic():
    progress.configure(None)
    yield
    progress.configure(None)


def test_silent_when_not_a_terminal(capsys):
    assert not progress.enabled()  # pytest captures stderr: not a terminal
    with progress.steps(["a", "b"], desc="test") as run:
        with run.step("a"):
            items = list(progress.track(range(5), "inner"))
        with run.step("b"), progress.step("sub"):
            pass
    assert items == [0, 1, 2, 3, 4]
    assert set(run.timings) == {"a", "b"}
    assert capsys.readouterr().err == ""


def test_drawn_on_a_terminal_unless_quiet(monkeypatch):
    tty = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty)
    assert progress.enabled()
    with progress.steps(["analyse"], desc="spa test") as run:
        with run.step("analyse"):
            assert list(progress.track([1, 2], "batches")) == [1, 2]
        with run.step("extra"):  # a step not announced is added
            pass
    assert "spa test" in tty.getvalue() and "analyse" in tty.getvalue()
    assert run.names == ["analyse", "extra"]

    quiet = FakeTerminal()
    monkeypatch.setattr("sys.stderr", quiet)
    progress.configure(quiet=True)
    assert not progress.enabled()
    with progress.steps(["analyse"]) as run, run.step("analyse"):
        list(progress.track([1], "x"))
    assert quiet.getvalue() == ""


def test_step_timings_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="spa_core.progress"):
        with progress.steps(["export"], desc="spa prune") as run, run.step("export"):
            pass
        with progress.step("hessians"):
            pass
    assert "spa prune: export:" in caplog.text and "hessians:" in caplog.text


def test_step_failure_propagates_and_closes():
    with pytest.raises(ValueError), progress.steps(["a"]) as run, run.step("a"):
        raise ValueError("boom")
    assert "a" in run.timings and not progress._active
