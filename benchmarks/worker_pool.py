"""Run jobs in long-lived worker subprocesses, with a time limit per job.

A sweep over hundreds of models pays the imports (torch, torchvision, timm) once per
worker, not once per model, yet a hang, a crash or a memory blow-up costs one row, not
the sweep: the worker is killed and a fresh one started for the next job.

Protocol (text lines): the parent writes one job per line to the worker's stdin; the
worker answers with lines ``@@PART <json>`` (partial results, kept if the job later
dies) and one final ``@@ROW <json>``. Anything else the worker prints is ignored.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

PART, ROW = "@@PART ", "@@ROW "


class Worker:
    """One worker subprocess; :meth:`run` sends a job and waits for its row."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = tempfile.TemporaryFile(mode="w+")

    def _start(self) -> subprocess.Popen[str]:
        self.lines = queue.Queue()
        self.stderr.seek(0)
        self.stderr.truncate()
        proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, bufsize=1, start_new_session=True,
        )
        threading.Thread(target=self._read, args=(proc, self.lines), daemon=True).start()
        return proc

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def stop(self) -> None:
        """Kill the worker (and anything it started)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().splitlines() if ln.strip()]
        return lines[-1][:200] if lines else "no output"

    def run(self, job: str, timeout: float) -> tuple[dict[str, Any] | None, dict[str, Any], str]:
        """Send ``job``; return (final row or None, merged partial rows, why it failed)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(job + "\n")
        self.proc.stdin.flush()
        partial: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                return None, partial, f"timed out after {timeout:.0f} s"
            if line is None:
                code = self.proc.wait()
                why = f"worker died (exit {code}): {self._stderr_tail()}"
                self.proc = None
                return None, partial, why
            if line.startswith(PART):
                partial.update(json.loads(line[len(PART):]))
            elif line.startswith(ROW):
                return json.loads(line[len(ROW):]), partial, ""


def emit(prefix: str, payload: dict[str, Any]) -> None:
    """Worker side: send a partial (``PART``) or final (``ROW``) result to the parent."""
    print(prefix + json.dumps(payload), flush=True)


def current_rss_bytes() -> int:
    """Resident memory of this process now (Linux), 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
