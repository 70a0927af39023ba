# Set-up in two commands: `make demo` (creates .venv, installs enliven, animates the bundled example) and
# `make test` (the test suite; CI runs exactly this, see .ci/run). Choose the interpreter with
# `make PYTHON=python3.12 ...`; it is read when .venv is created, so run `rm -rf .venv` to switch.

PYTHON ?= python3
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu".
TORCH_PIP_ARGS ?=

VENV := .venv
BIN := $(VENV)/bin
# Written once the installs have succeeded; reinstalls when pyproject.toml or constraints.txt changes.
STAMP := $(VENV)/.installed
# Versions known to install together (see its header): without them pip's resolver can backtrack for a long time.
CONSTRAINTS := constraints.txt
# torch is pinned and installed first: a bare "torch" from the dependencies may pull a multi-GB CUDA build.
TORCH := torch==2.13.0
# CI logs need pip's result, not its progress.
PIP_QUIET := $(if $(CI),-q,)

.PHONY: venv demo test

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@if [ ! -x $(BIN)/python ]; then \
		$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null || { \
			echo "make: enliven needs Python 3.11 or 3.12 and '$(PYTHON)' is missing or another version;" \
				"name one, e.g. make PYTHON=python3.12 $(MAKECMDGOALS)" >&2; \
			exit 1; }; \
		echo "$(PYTHON) -m venv $(VENV)"; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install $(PIP_QUIET) $(TORCH_PIP_ARGS) "$(TORCH)"
	$(BIN)/python -m pip install $(PIP_QUIET) -c $(CONSTRAINTS) -e ".[dev]"
	@touch $@

demo: venv
	$(BIN)/enliven animate assets/source-astronaut.jpg assets/driving-grid-bbaf2n.mpg -o out/astronaut.mp4 --paste-back

test: venv
	$(BIN)/python -m pytest -q
