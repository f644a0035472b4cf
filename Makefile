# The two set-up commands: `make demo` and `make test`. Everything they need installs from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
LOCK   := requirements.lock
DEMO_CUSTOMERS ?= 5000
DEMO_SEED ?= 7

.PHONY: demo test venv dev browser mjml-node clean bench lock floors

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs exactly the versions in $(LOCK) (constraints: only what the extras need is installed).
$(RUNTIME_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -e . -c $(LOCK)
	touch $@

$(DEV_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]' -c $(LOCK)
	touch $@ $(RUNTIME_STAMP)

venv: $(RUNTIME_STAMP)
dev: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/lojal db upgrade
	$(BIN)/lojal sample-data --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --replace
	$(BIN)/lojal run
	$(BIN)/lojal report --out $${LOJAL_HOME:-var}/report.html

# Headless Chromium for the preview tests: Debian's package, installed when we may (root) and it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: browser tests will be skipped"; \
	  else echo "chromium not found and not root: browser tests will be skipped"; fi; }

# Official MJML (pinned in bench/node/package-lock.json) for the template-fidelity tests and bench/render.py,
# installed from the npm registry when Node and npm are here; Node stays optional (those tests skip without it).
mjml-node:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  [ -x bench/node/node_modules/.bin/mjml ] || npm ci --prefix bench/node --no-audit --no-fund --loglevel=error >/dev/null \
	    || echo "official MJML could not be installed: its comparison tests will be skipped"; \
	else echo "node/npm not found: official MJML comparison tests will be skipped"; fi

test: $(DEV_STAMP) browser mjml-node
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(DEV_STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

# Re-resolve every pin after changing a dependency in pyproject.toml (pip-tools in its own venv).
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet pip-tools
	.venv-lock/bin/pip-compile --quiet --upgrade --extra dev --strip-extras --no-emit-index-url \
	  --no-emit-find-links -o $(LOCK) pyproject.toml

# The floors in pyproject.toml are true: install each direct dependency at its lowest allowed version
# (in .venv-floors) and run the tests without a Prefect server there (197 passed on 2026-11-30).
floors:
	$(PYTHON) -m venv .venv-floors
	.venv-floors/bin/pip install --quiet -e '.[dev]' -c tests/floors.txt
	.venv-floors/bin/python -m pytest -q -x -m "not slow and not browser" tests/test_migrations.py \
	  tests/test_store.py tests/test_cli.py tests/test_config.py tests/test_import.py tests/test_planning.py \
	  tests/segments tests/reco tests/test_pipeline.py tests/test_report.py tests/test_delivery.py

clean:
	rm -rf $(VENV) .venv-lock .venv-floors var .pytest_cache
