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

.PHONY: venv run detect test bench docs viz viz-browser viz-check up down status clean-data

# The venv is (re)built whenever the lock or pyproject changes.
$(VENV)/.installed: requirements.lock requirements-imdl.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (first time: a few minutes)"
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-imdl.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }  # see the file: its pins fight ours
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/kedro run

# The trained semantic detector on one's own photos: IN= a folder, an s3:// prefix or one image.
# Overlays + per-image JSON in data/07_model_output/detect/ (index.json lists skipped files).
detect: venv
	@test -n "$(IN)" || { echo "usage: make detect IN=path/to/photos (a folder, s3:// prefix or one image)"; exit 2; }
	$(VENV)/bin/kedro run --pipeline detect --params "detect.input=$(IN)"

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/run.py

# The documentation site (mkdocs.yml, docs/) into build/site/; --strict: a broken link or anchor fails.
docs: venv
	$(VENV)/bin/mkdocs build --strict
	@echo "documentation site in build/site/: $(PY) -m http.server -d build/site -b 127.0.0.1 4142"

# Lineage: `kedro viz build` writes a static site (offline) into build/ (ignored). Its page fetches
# build/api/*, so serve it rather than opening the file.
viz: venv
	$(VENV)/bin/kedro viz build
	@echo "lineage site in build/: $(PY) -m http.server -d build -b 127.0.0.1 4141, then open http://127.0.0.1:4141"

# Debian's chromium, for tests/infra/test_viz.py only; installed once if absent.
viz-browser:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium (for the kedro-viz page test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium \
	  || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends chromium; }; }

# Builds the site, checks every pipeline is in it, renders it in headless Chromium, keeps the screenshot.
viz-check: venv viz-browser
	EDITLENS_VIZ_SCREENSHOT=$(CURDIR)/data/08_reporting/kedro_viz.png $(PY) -m pytest -q -p no:cacheprovider tests/infra/test_viz.py
	@echo "screenshot: data/08_reporting/kedro_viz.png"

# A local orchestration stack on 127.0.0.1 (flows/local_stack.py): Prefect server + UI, the `gpu`
# process work pool with its concurrency limit and a worker, moto's S3 server with the bucket.
# Pids, logs and env.sh in .prefect/stack/ (ignored). `make down` stops all of it.
API_PORT ?= 4200
S3_PORT ?= 9000
up: venv
	$(PY) -m flows.local_stack up --api-port $(API_PORT) --s3-port $(S3_PORT)

down:
	$(PY) -m flows.local_stack down

status:
	$(PY) -m flows.local_stack status

clean-data:  # everything the pipelines wrote; data/01_raw (your inputs) is kept
	find data/02_intermediate data/03_primary data/04_feature data/05_model_input data/06_models \
	     data/07_model_output data/08_reporting -mindepth 1 ! -name .gitkeep -delete
