# Common commands. `make run` and `make test` each set up .venv first.
.PHONY: setup run test test-fast lint bench

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/salmon run

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not e2e and not slow"

lint:
	.venv/bin/ruff check src tests benchmarks

bench: setup
	.venv/bin/salmon bench judge --json
