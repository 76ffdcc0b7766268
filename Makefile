# The two commands a new user needs: `make demo` and `make test`.
# `make demo` installs only what the simulated demo needs (and what `ARGS="--hypervisor kvm"` or
# `ARGS="--network vr"` ask for); `make test` installs everything
# the whole suite uses (QEMU, libvirt, nfs-ganesha, dnsmasq, ... from apt; all Python extras).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench system clean

# What a demo needs beyond the simulated one, read from ARGS: `--hypervisor kvm` needs QEMU,
# libvirt and libvirt-python; `--network vr` the router's tools (both as root, for apt).
DEMO_NEEDS := $(VENV)/.demo-installed
ifneq ($(filter kvm --hypervisor=kvm,$(ARGS)),)
DEMO_NEEDS += $(VENV)/.demo-kvm-installed
endif
ifneq ($(filter vr --network=vr,$(ARGS)),)
DEMO_NEEDS += $(VENV)/.demo-network-installed
endif

demo: $(DEMO_NEEDS)
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

$(VENV)/.demo-kvm-installed: setup.py scripts/apt/kvm.txt scripts/apt/storage.txt | $(VENV)/.demo-installed
	bash scripts/install-system.sh kvm storage
	$(BIN)/pip install -q -e '.[kvm]'
	touch $@

$(VENV)/.demo-network-installed: scripts/apt/network.txt | $(VENV)/.demo-installed
	bash scripts/install-system.sh network
	touch $@

$(VENV)/.test-installed: setup.py scripts/apt/*.txt tests/thirdparty_plugin/setup.py | $(BIN)/python
	bash scripts/install-system.sh
	$(BIN)/pip install -q -e '.[test,postgresql,mysql,kvm]'
	$(BIN)/pip install -q -e tests/thirdparty_plugin
	touch $@ $(VENV)/.demo-installed $(VENV)/.demo-kvm-installed $(VENV)/.demo-network-installed

clean:
	rm -rf $(VENV) *.egg-info
