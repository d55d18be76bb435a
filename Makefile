# The README's commands. Each target creates the virtual environment when it is missing.
PY ?= python3.11
VENV ?= .venv
EXTRAS ?= dev
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma := ,

# System tools the tests drive (command:Debian package); installed when missing and running as root.
SYSTEM_TOOLS = dciodvfy:dicom3tools dcmdump:dcmtk dcm2pnm:dcmtk chromium:chromium bart:bart \
	ismrmrd_generate_cartesian_shepp_logan:ismrmrd-tools ismrmrd_recon_cartesian_2d:ismrmrd-tools

.PHONY: setup tools fit test lint format app bench data reproduce clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	$(BIN)/pip install -q -c constraints.txt --no-deps fastmri==0.3.0
	touch $@

fit: $(STAMP)
	$(BIN)/python -m mrirecon.fit fit --config codecs/base.yaml --config codecs/tiny.yaml

tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "missing system tools:$$missing (the tests that need them are skipped)"; fi

test: $(STAMP) tools
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

app: $(STAMP)
	$(BIN)/python app/app.py $(APP_ARGS)

data: $(STAMP)
	$(BIN)/python -m mrirecon.data.synth

BENCH_ARGS ?= backbone
bench: $(STAMP)
	$(BIN)/python -m mrirecon.bench $(BENCH_ARGS)

# Every README number computed on the CPU, each step under its own time limit (results/reproduce_cpu.py).
OUT ?= results/reproduced
ONLY ?=
reproduce: $(STAMP) tools
	$(BIN)/python results/reproduce_cpu.py $(OUT) $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV)
