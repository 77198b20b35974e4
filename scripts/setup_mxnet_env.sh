#!/usr/bin/env bash
# Create MXNet's own environment, <repo>/.venv-mxnet, for the SPA MXNet adapter.
#
# MXNet 1.9.1 (its last release) needs numpy < 1.24 and onnx < 1.19, which cannot live
# beside the main environment's numpy 2 / onnx 1.23. The adapter (spa_mxnet) runs its
# MXNet-side worker in this environment through a subprocess.
#
# It also puts <repo>/adapters on that environment's path (a .pth file) so that Gluon
# users there can `from spa_mxnet.gluon import prune_block`.
#
# Idempotent: does nothing when .venv-mxnet already imports mxnet, numpy and onnx.
# Usage: bash scripts/setup_mxnet_env.sh          (from anywhere; ~10 s, ~360 MB)
# Override the interpreter with SPA_MXNET_PYTHON_BASE=/path/to/python3.11.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${REPO}/.venv-mxnet"
BASE_PY="${SPA_MXNET_PYTHON_BASE:-python3.11}"
PINS=(mxnet==1.9.1 numpy==1.23.5 onnx==1.14.1)
CHECK='import mxnet, numpy, onnx; assert mxnet.__version__ == "1.9.1"'

# Two concurrent runs (parallel test workers) must not build the environment twice.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/spa-setup-mxnet-env.$(id -u).lock"
    flock 9
fi

link_adapters() {
    local site pth
    site="$("${ENV_DIR}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    pth="${site}/spa_adapters.pth"
    if [ "$(cat "${pth}" 2>/dev/null)" != "${REPO}/adapters" ]; then
        echo "${REPO}/adapters" > "${pth}"
    fi
}

if [ -x "${ENV_DIR}/bin/python" ] && "${ENV_DIR}/bin/python" -c "${CHECK}" >/dev/null 2>&1; then
    link_adapters
    echo "MXNet environment ready: ${ENV_DIR}"
    exit 0
fi

if ! command -v "${BASE_PY}" >/dev/null 2>&1; then
    echo "error: ${BASE_PY} not found; MXNet 1.9.1 needs Python 3.11 or older (set SPA_MXNET_PYTHON_BASE)." >&2
    exit 1
fi

"${BASE_PY}" -m venv "${ENV_DIR}"
"${ENV_DIR}/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
"${ENV_DIR}/bin/python" -c "${CHECK}"
link_adapters
echo "MXNet environment ready: ${ENV_DIR}"
