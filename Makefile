# The two commands a new user needs: `make demo` and `make test`.
# `make demo` installs only what the simulated demo needs; `make test` installs everything
# the whole suite uses (QEMU, libvirt, nfs-ganesha, dnsmasq, ... from apt; all Python extras).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench system clean

demo: $(VENV)/.demo-installed
	$(BIN)/strato demo $(ARGS)

test: $(VENV)/.test-installed
	bash scripts/test.sh $(ARGS)

bench: $(VENV)/.test-installed
	bash scripts/bench.sh $(ARGS)

system:
	bash scripts/install-system.sh

$(BIN)/python:
	bash scripts/install-system.sh core
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo-installed: setup.py | $(BIN)/python
	$(BIN)/pip install -q -e . cs
	touch $@

$(VENV)/.test-installed: setup.py scripts/apt/*.txt tests/thirdparty_plugin/setup.py | $(BIN)/python
	bash scripts/install-system.sh
	$(BIN)/pip install -q -e '.[test,postgresql,mysql,kvm]'
	$(BIN)/pip install -q -e tests/thirdparty_plugin
	touch $@ $(VENV)/.demo-installed

clean:
	rm -rf $(VENV) *.egg-info
