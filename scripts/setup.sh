#!/usr/bin/env bash
# Create .venv/ with everything SPA needs (frameworks included). Idempotent: a stamp
# file records the hash of the inputs, so a second run returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp_inputs="$(cat pyproject.toml constraints.txt scripts/setup.sh | sha1sum | cut -c1-12)"
stamp=".venv/.spa-installed-${stamp_inputs}"
if [ -f "$stamp" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned: any other torch pulls gigabytes of CUDA packages.
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -c constraints.txt -e ".[torch,keras,jax,report,dev,zoo]"
# Fashion-MNIST ships as a Debian package (no download at run time).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null
fi
# Headless Chromium renders the HTML report in its test (Debian package; optional).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)) >/dev/null || echo "spa: chromium not installed; the report's browser test will be skipped"
fi
rm -f .venv/.spa-installed-*
touch "$stamp"
echo "spa: environment ready in .venv/"
