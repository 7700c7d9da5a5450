# Two entry points (see README): `make demo` and `make test`; both install first.
.PHONY: install constraints demo test lint unit integration bench clean-platform

install:
	bash suite/install.sh

# After a change to pyproject.toml's dependencies: resolve them afresh in a throw-away venv and
# pin every version it got in constraints.txt (which install uses); commit both.
constraints:
	bash suite/install.sh --freeze

demo: install
	.venv/bin/suite demo

lint:
	.venv/bin/ruff check suite flows tasks stacks policies models tests bench
	.venv/bin/mypy suite flows tasks stacks policies models

# The Pulumi mock tests run in their own process: Pulumi's mock runtime shares asyncio state that
# the Prefect and HTTP tests leave behind, and fails after them in one session.
PULUMI_TESTS = tests/unit/stacks tests/unit/crossguard tests/unit/test_provision.py

test: install lint
	.venv/bin/pytest -q -m "not slow" $(PULUMI_TESTS)
	.venv/bin/pytest -q -m "not slow" --durations=15 $(addprefix --ignore=,$(PULUMI_TESTS))

unit: install
	.venv/bin/pytest -q $(PULUMI_TESTS)
	.venv/bin/pytest -q tests/unit $(addprefix --ignore=,$(PULUMI_TESTS))

integration: install
	.venv/bin/pytest -q -m integration

bench: install
	.venv/bin/python bench/platform_up.py
