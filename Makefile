# The two set-up commands: `make demo` and `make test`. Everything they need installs from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
DEMO_CUSTOMERS ?= 5000
DEMO_SEED ?= 7

.PHONY: demo test venv dev browser clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

venv: $(RUNTIME_STAMP)
dev: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/lojal sample-data --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --replace
	$(BIN)/lojal run

# Headless Chromium for the preview tests: Debian's package, installed when we may (root) and it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: browser tests will be skipped"; \
	  else echo "chromium not found and not root: browser tests will be skipped"; fi; }

test: $(DEV_STAMP) browser
	$(BIN)/python -m pytest

bench: $(DEV_STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
