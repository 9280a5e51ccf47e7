# pontibot — every target sets up .venv when needed; these are the targets CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: venv test-deps run demo chat test test-pg test-rasa lint format bench bench-rasa rasa-venv lock clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## run: migrate and start on the embedded default (SQLite, demo back ends, http://127.0.0.1:8080)
run: venv
	$(BIN)/pontibot db upgrade
	$(BIN)/pontibot run

## chat: talk to the bot in the terminal
chat: venv
	$(BIN)/pontibot db upgrade
	$(BIN)/pontibot chat

## demo: Car Free Day booth mode on the LAN (0.0.0.0:8080), demo data, booth screen at /booth
demo: venv
	$(BIN)/pontibot db upgrade
	$(BIN)/pontibot demo

## test-deps: Debian chromium and an emoji font for the browser tests (apt as root or with sudo)
test-deps:
	@sh scripts/test_deps.sh

## test: the whole suite on SQLite
test: venv test-deps
	$(BIN)/python -m pytest

## test-pg: the database tests again on PostgreSQL ($(PG_TEST_URL))
test-pg: venv
	PONTIBOT_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -m "db and not rasa"

## rasa-venv: Rasa 3.6.21 on Python 3.10 in its own venv (RASA_VENV, default ~/.cache/pontibot/rasa-3.6.21)
rasa-venv:
	@sh scripts/rasa_venv.sh

## test-rasa: the bot on a real Rasa server (tests marked rasa; never part of make test or CI)
test-rasa: venv rasa-venv
	$(BIN)/python -m pytest -m rasa tests/nlu/test_rasa_backend.py

## lint: ruff, mypy (strict on the five packages), import-linter contracts, no import circles
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/import_cycles.py

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: every benchmark under bench/ but Rasa's (figures go to docs/BENCHMARKS.md)
bench: venv
	@set -e; for script in bench/*.py; do \
	  [ -e "$$script" ] || continue; \
	  [ "$$script" = bench/rasa_bench.py ] && continue; \
	  echo "== $$script"; $(BIN)/python "$$script"; \
	done

## bench-rasa: Rasa DIET and the embedded NLU side by side, same data, same sets (takes ~15 minutes)
bench-rasa: venv rasa-venv
	$(BIN)/python bench/rasa_bench.py

## lock: re-resolve the pinned versions after changing dependencies in pyproject.toml
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
