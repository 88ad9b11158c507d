# hoptrace.k8s — every target installs what it needs (Debian, root) and is quick when it is there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODE ?= ipip
IPV6 ?=
NODES ?= 2
APT_PACKAGES := tcpdump tshark openssh-server openssh-client iproute2 curl openssl procps iptables nftables coreutils libxml2-utils chromium \
  wireguard-go wireguard-tools conntrack ipvsadm
COLL_LINK := .collections/ansible_collections/hoptrace/k8s
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: all deps apt venv demo test lint sanity unit lab-test e2e bench lab-up lab-down lab-status clean

all: test

apt:
	@missing=""; \
	for c in tcpdump tshark sshd ssh ip curl openssl pgrep iptables nft timeout xmllint chromium wireguard-go wg conntrack ipvsadm; do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(VENV)/.installed: requirements-dev.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(COLL_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn ../../.. $@

venv: $(VENV)/.installed $(COLL_LINK)

deps: apt venv

lab-up: deps
	$(PY) tests/lab/lab.py up --mode $(MODE) --nodes $(NODES)$(if $(IPV6), --ipv6)

lab-down: deps
	$(PY) tests/lab/lab.py down

lab-status: deps
	$(PY) tests/lab/lab.py status

# ansible-lint runs offline (.ansible-lint) and finds hoptrace.k8s through .collections/;
# the venv's bin/ on PATH is where it looks for ansible-playbook and friends.
# One finding is printed as a warning instead of failing: galaxy[no-repository] asks for the
# collection's public repository URL, which the project does not have yet; galaxy.yml leaves the
# field out rather than invent an address. Remove the --warn-list once `repository:` is set.
lint: venv
	$(VENV)/bin/ruff check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ansible-lint --profile production --warn-list 'galaxy[no-repository]'
	$(VENV)/bin/antsibull-changelog lint
	$(VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

sanity: venv
	bash tests/sanity/run.sh

unit: venv
	$(PY) -m pytest -q tests/unit

lab-test: deps
	$(PY) -m pytest -q tests/lab tests/integration

e2e: deps
	$(PY) -m pytest -q tests/e2e

test: deps lint
	bash tests/sanity/run.sh
	$(PY) -m pytest -q tests/unit tests/lab tests/integration tests/e2e benchmarks

demo: deps
	MODE=$(MODE) IPV6=$(IPV6) bash tests/lab/demo.sh

bench: deps
	$(PY) benchmarks/run.py

clean: lab-down
	rm -rf .build .collections .pytest_cache .ruff_cache
