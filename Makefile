# EditLens: `make run` (set-up + the embedded default end to end) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

# Offline switches: no telemetry, no hub downloads, Prefect state inside the project.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg
export PYTHONPATH := $(CURDIR):$(CURDIR)/src

.PHONY: venv run test bench viz clean-data

# The venv is (re)built whenever the lock or pyproject changes.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (first time: a few minutes)"
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/kedro run

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/run.py

viz: venv
	$(VENV)/bin/kedro viz build --include-hooks 2>/dev/null || $(VENV)/bin/kedro viz build

clean-data:  # everything the pipelines wrote; data/01_raw (your inputs) is kept
	find data/02_intermediate data/03_primary data/04_feature data/05_model_input data/06_models \
	     data/07_model_output data/08_reporting -mindepth 1 ! -name .gitkeep -delete
