# Two entry points (see README): `make demo` and `make test`; both install first.
.PHONY: install demo test lint unit integration bench clean-platform

install:
	bash suite/install.sh

demo: install
	.venv/bin/suite demo

lint:
	.venv/bin/ruff check suite flows tasks stacks policies models tests bench
	.venv/bin/mypy suite flows tasks stacks policies models

test: install lint
	.venv/bin/pytest -q -m "not slow" --durations=15

unit: install
	.venv/bin/pytest -q tests/unit

integration: install
	.venv/bin/pytest -q -m integration

bench: install
	.venv/bin/python bench/platform_up.py
