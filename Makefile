# Two entry points for a fresh machine: `make matrix` (the benchmark) and `make test`. Both build .venv first,
# from the pinned lockfile, only when it is missing or older than the lockfile.
PYTHON ?= python3.12
# Where python3.12 comes from pyenv (as on these machines), its shim needs the version named.
PYENV_312 := $(shell pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -n 1)
ifneq ($(PYENV_312),)
export PYENV_VERSION ?= $(PYENV_312)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
# Test files run in this many processes (pytest-xdist, one file per process so module fixtures run once).
TEST_WORKERS ?= 2

.PHONY: setup matrix test bench lock lock-check

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml plugins/lerobot_env_chefmate/pyproject.toml
	@# A venv from another Python (the project was on 3.11 before) is rebuilt, not patched.
	$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null || \
	    (rm -rf $(VENV) && $(PYTHON) -m venv $(VENV))
	@# torch's PyPI wheel for x86_64 brings CUDA libraries: the venv takes ~6.5 GB. Say so before pip runs out.
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	if [ ! -d $(VENV)/lib/python3.12/site-packages/torch ] && [ "$$free" -lt 8 ]; then \
	    echo "make: only $${free} GiB free here; the venv needs ~7 GiB (torch + CUDA libraries): free disk space and rerun" >&2; \
	    exit 1; fi
	$(PY) -m pip install -q --upgrade "pip==26.3"
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . -e plugins/lerobot_env_chefmate
	touch $(STAMP)

matrix: $(STAMP)
	$(PY) eval/run_matrix.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -rs -n $(TEST_WORKERS) --dist loadfile $(ARGS)

bench: $(STAMP)
	$(PY) -m training.embedded_bench $(ARGS)

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed '1i # Exact versions for Python 3.12 / x86_64, from `pip freeze` of a working install. Regenerate with `make lock`.' > requirements.lock

# The Isaac Lab extra resolves on this same lock (needs the package index; not part of `make test`).
lock-check: $(STAMP)
	$(PY) -m pip install --dry-run --ignore-installed -q -r requirements.lock -r requirements-isaaclab.txt && \
	    echo "requirements.lock + requirements-isaaclab.txt resolve together"
