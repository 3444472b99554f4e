# `make demo` and `make test` work on a fresh clone: each creates .venv and installs what it needs
# (pinned by requirements/dev.lock) when that is missing or changed, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/dev.lock
UV_VERSION := 0.13.9
# The lock is universal: one file for every Python the package supports.
LOCK_COMPILE = $(BIN)/python -m uv pip compile --quiet --universal --python-version 3.10 \
	--custom-compile-command "make lock" pyproject.toml --extra dev

.PHONY: demo test lint lock lock-check system-packages clean bench faults soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv installs when it can be had (from PyPI, into the venv); pip otherwise. Both read the same lock.
$(BIN)/.uv: | $(BIN)/python
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" >/dev/null 2>&1 \
		|| echo "uv could not be installed: installing with pip (slower)"
	@touch $@

define install
	@if $(BIN)/python -m uv --version >/dev/null 2>&1; then \
		$(BIN)/python -m uv pip install --quiet --python $(BIN)/python $(1); \
	else \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check $(1); \
	fi
endef

# The whole test and lint environment, exactly as locked.
$(VENV)/.dev-installed: pyproject.toml $(LOCK) | $(BIN)/.uv
	$(call install,-r $(LOCK))
	$(call install,--no-deps -e .)
	@touch $@

# Only what the demo runs: the package with its extras, langchain and langgraph, at the locked versions.
$(VENV)/.demo-installed: pyproject.toml $(LOCK) | $(BIN)/.uv
	$(call install,-c $(LOCK) -e .[demo])
	@touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/haufe-copilot demo

system-packages:
	@scripts/system-packages

test: system-packages $(VENV)/.dev-installed
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Re-resolve the lock from pyproject.toml, keeping every pin that still fits (uv prefers them).
lock: | $(BIN)/.uv
	$(LOCK_COMPILE) -o $(LOCK)

# Whether the lock is what `make lock` would write now (needs the package index; the offline check,
# that the lock satisfies pyproject.toml, is tests/project/test_lock.py).
lock-check: | $(BIN)/.uv
	@cp $(LOCK) $(VENV)/lock-check.txt
	@$(LOCK_COMPILE) -o $(VENV)/lock-check.txt
	@diff -u $(LOCK) $(VENV)/lock-check.txt && echo "$(LOCK) is current"

bench: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks

faults: $(VENV)/.dev-installed
	$(BIN)/python -m tests.reliability.matrix --write docs/reliability.md

soak: $(VENV)/.dev-installed
	$(BIN)/python -m tests.reliability.soak

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
