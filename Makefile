# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test system venv bench clean

demo: venv
	$(BIN)/strato demo $(ARGS)

test: venv
	bash scripts/test.sh $(ARGS)

bench: venv
	bash scripts/bench.sh $(ARGS)

system:
	bash scripts/install-system.sh

venv: $(STAMP)

$(STAMP): setup.py scripts/apt/*.txt
	bash scripts/install-system.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,postgresql,mysql,kvm]'
	$(BIN)/pip install -q -e tests/thirdparty_plugin
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info
