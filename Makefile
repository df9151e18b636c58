# The two commands of the README: `make demo` (the main job) and `make test`. Both set up
# everything on a fresh machine: a virtual environment, a Docker daemon, the course images.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup release check lab clean

demo: setup
	$(VENV)/bin/course demo

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
