# Two entry points for a fresh machine: `make matrix` (the benchmark) and `make test`. Both build .venv first,
# from the pinned lockfile, only when it is missing or older than the lockfile.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: setup matrix test bench lock

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==26.3"
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

matrix: $(STAMP)
	$(PY) eval/run_matrix.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	$(PY) eval/bench.py $(ARGS)

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed '1i # Exact versions for Python 3.11 / x86_64, from `pip freeze` of a working install. Regenerate with `make lock`.' > requirements.lock
