# The two commands of the README: `make demo` (the main job) and `make test`. Both set up
# everything on a fresh machine: a virtual environment, a Docker daemon, the course images.
# COURSE_ENGINE (20.10, 26.1, system or auto) chooses the Docker Engine `course setup` provides;
# auto keeps the one there, or installs 26.1. `make test` runs the suite on the Debian release's
# own engine (20.10 on Debian 12, 26.1 on 13); tests/side_gradings.py grades the notebooks in side
# daemons: on that engine, on the other one, and those about images on 26.1's containerd store.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup release check lab clean

demo: setup
	$(VENV)/bin/course demo

test: export COURSE_ENGINE ?= system
test: setup
	./scripts/install-test-tools
	COURSE_TEST_POSTGRES_URL="$$(./scripts/start-postgres)" $(VENV)/bin/pytest

setup: $(STAMP)
	$(VENV)/bin/course setup

lab: setup
	$(VENV)/bin/course lab

release: $(STAMP)
	$(VENV)/bin/course release

check: $(STAMP)
	$(VENV)/bin/course release --check

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || ./scripts/install-python-venv
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) work logs
