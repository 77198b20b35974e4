# The README's commands. Each installs what it needs first (idempotently).
.PHONY: setup demo test test-all lint

setup:
	@bash scripts/setup.sh
	@if [ -f scripts/setup_mxnet_env.sh ]; then bash scripts/setup_mxnet_env.sh; fi

demo: setup
	@.venv/bin/python -m spa_torch.demo

test: setup
	@.venv/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

test-all: setup
	@.venv/bin/python -m pytest -q -p no:cacheprovider

lint: setup
	@.venv/bin/ruff check .
