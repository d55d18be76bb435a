# The README's commands. Each target creates the virtual environment when it is missing.
PY ?= python3.11
VENV ?= .venv
EXTRAS ?= dev
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma := ,

.PHONY: setup fit test lint format app bench data clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	$(BIN)/pip install -q -c constraints.txt --no-deps fastmri==0.3.0
	touch $@

fit: $(STAMP)
	$(BIN)/python -m mrirecon.fit fit --config codecs/tiny.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

data: $(STAMP)
	$(BIN)/python -m mrirecon.data.synth

bench: $(STAMP)
	$(BIN)/python -m mrirecon.bench

clean:
	rm -rf $(VENV)
