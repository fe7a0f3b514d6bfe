# voice2fa: `make run` serves the app, `make test` runs the whole suite,
# `make lint` checks the style and the types. All set up .venv first
# (Python 3.11+ from PATH, or PYTHON=...), from the lock file.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock

.PHONY: install lock run sandbox example test lint format format-check audit bench migrate clean

# Exactly what requirements.lock pins, every file checked against its hash
# (pip included), then the app itself without resolving anything again.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check || { echo "make: requirements.lock lacks what pyproject.toml asks for: make lock"; exit 1; }
	touch $(STAMP)

install: $(STAMP)

# After changing dependencies in pyproject.toml: pins what is new, keeps every
# pin that still fits (pip-compile reuses the existing file; `make lock
# UPGRADE=1` moves every pin to the newest release instead). Needs only the
# locked pip-tools, not a complete install: that is what it repairs.
lock:  ## regenerate requirements.lock from pyproject.toml (all extras, with hashes)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/pip-compile || $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --all-extras --strip-extras \
		--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
		--output-file=$(LOCK) pyproject.toml

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

lint: install  ## ruff's rules and format, and mypy --strict (webapp/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# every `type: ignore` says why, after its code: `# type: ignore[code]  # because ...`
	@! grep -rnE 'type: ignore\[[^]]*\][[:space:]]*$$' webapp || { echo "lint: a type: ignore without a reason (above)"; exit 1; }

format: install  ## apply ruff format and ruff's safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

format-check: install  ## would `ruff format` change anything? (part of make lint)
	$(BIN)/ruff format --check .

audit: install  ## known vulnerabilities in requirements.lock (pip-audit; needs its vulnerability service)
	$(BIN)/python .ci/audit.py $(LOCK)

bench: install  ## HTTP throughput and p99 against a bare Starlette hello, on SQLite and PostgreSQL (needs wrk); writes docs/benchmarks.md
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 2; }
	$(BIN)/python bench/http_load.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
