# voice2fa: `make run` serves the app, `make test` runs the whole suite.
# Both set up .venv first (Python 3.11+ from PATH, or PYTHON=...).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run sandbox example test bench migrate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install  ## serve on http://127.0.0.1:8000 (SQLite, in-memory limits, sandbox unless MESSAGEBIRD_API_KEY is set)
	$(BIN)/voice2fa serve

sandbox: install  ## the Verify sandbox (MessageBird and Twilio APIs) alone on http://127.0.0.1:8001
	$(BIN)/voice2fa sandbox

example: install  ## voice2fa (sandbox) on http://127.0.0.1:8000 and the example shop on http://localhost:8002, the shop registered as a client
	$(BIN)/python examples/shop/run.py

migrate: install  ## bring DATABASE_URL's schema to head
	$(BIN)/alembic upgrade head

test: install
	$(BIN)/python -m pytest

bench: install  ## HTTP throughput and p99 against a bare Starlette hello, on SQLite and PostgreSQL (needs wrk); writes docs/benchmarks.md
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 2; }
	$(BIN)/python bench/http_load.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
