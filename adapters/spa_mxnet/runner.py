"""Run the MXNet-side worker in MXNet's own environment (main environment).

The worker's interpreter is ``$SPA_MXNET_PYTHON`` if set, else ``.venv-mxnet/bin/python``
in the repository (beside ``adapters/``), else in the current directory. When none
exists, :class:`~spa_core.errors.FrameworkError` names the one command that creates it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from spa_core.errors import FrameworkError, InvalidModelError, InvalidOptionError, SpaError

ADAPTERS_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = ADAPTERS_DIR.parent
ENV_NAME = ".venv-mxnet"
SETUP_SCRIPT = REPO_DIR / "scripts" / "setup_mxnet_env.sh"
# The worker's one-line errors: ``spa-mxnet-error[KIND]: sentence`` (see mx_worker).
ERROR_LINE = re.compile(r"^spa-mxnet-error\[(\w+)\]: (.*)$")
ERROR_KINDS: dict[str, type[SpaError]] = {
    "model": InvalidModelError,
    "option": InvalidOptionError,
    "framework": FrameworkError,
}
DEFAULT_TIMEOUT_S = 1800.0


def setup_command() -> str:
    """The one shell command that creates MXNet's environment."""
    if SETUP_SCRIPT.is_file():
        return f"bash {SETUP_SCRIPT}"
    return f"python3.11 -m venv {ENV_NAME} && {ENV_NAME}/bin/pip install mxnet==1.9.1 numpy==1.23.5 onnx==1.14.1"


def mxnet_python() -> Path:
    """The interpreter of MXNet's environment; FrameworkError when there is none."""
    override = os.environ.get("SPA_MXNET_PYTHON")
    if override:
        if not Path(override).is_file():
            raise FrameworkError(f"SPA_MXNET_PYTHON points to {override}, which does not exist")
        return Path(override)
    for root in (REPO_DIR, Path.cwd()):
        candidate = root / ENV_NAME / "bin" / "python"
        if candidate.is_file():
            return candidate
    raise FrameworkError(
        f"MXNet's environment {REPO_DIR / ENV_NAME} does not exist; create it with: {setup_command()}"
    )


def run_worker(command: str, job: dict[str, Any], timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Run ``mx_worker COMMAND`` on ``job``; return its result dict.

    The worker's one-line errors become InvalidModelError / InvalidOptionError /
    FrameworkError by their kind; a crash becomes a FrameworkError with the last lines
    of its output.
    """
    python = mxnet_python()
    with tempfile.TemporaryDirectory(prefix="spa-mxnet-job-") as tmp:
        job_path = Path(tmp) / "job.json"
        result_path = Path(tmp) / "result.json"
        job_path.write_text(json.dumps({**job, "result": str(result_path)}))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ADAPTERS_DIR), env.get("PYTHONPATH")) if p)
        env.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")
        try:
            proc = subprocess.run(
                [str(python), "-m", "spa_mxnet.mx_worker", command, str(job_path)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            raise FrameworkError(f"the MXNet worker ({command}) did not finish within {timeout:.0f} s") from None
        except OSError as exc:
            raise FrameworkError(f"cannot start MXNet's Python {python}: {exc.strerror}") from None
        if proc.returncode != 0:
            raise _failure(command, python, proc)
        return json.loads(result_path.read_text())


def _failure(command: str, python: Path, proc: subprocess.CompletedProcess[str]) -> SpaError:
    """The worker's own one-line error, else a FrameworkError with the end of its output."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        match = ERROR_LINE.match(line)
        if match:
            return ERROR_KINDS.get(match.group(1), FrameworkError)(match.group(2))
    if any("No module named 'mxnet'" in ln or "No module named 'onnx'" in ln for ln in lines):
        return FrameworkError(f"{python} lacks mxnet or onnx; repair MXNet's environment with: {setup_command()}")
    tail = " | ".join(lines[-3:]) if lines else f"exit status {proc.returncode}"
    return FrameworkError(f"the MXNet worker ({command}) failed: {tail}")
