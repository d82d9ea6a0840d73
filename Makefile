# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test generated

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# Compile the bundled example specs into generated/, import and run them, check against the reference.
demo: $(VENV)/.demo-installed
	$(PY) examples/demo.py

# pytest exits 5 when it collects no tests; that is not a failure of the code under test.
# One worker per core (pytest-xdist), each test file on one worker: most of the suite's time is
# Numba compiling variants, one core each, and a file's tests share the variants they compile.
test: $(VENV)/.test-installed
	KERAS_BACKEND=torch $(PY) -m pytest -q -p no:cacheprovider -n auto --dist loadfile; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Regenerate the golden modules in generated/ after a template change.
generated: $(VENV)/.demo-installed
	$(PY) -m lstmgen compile examples/*.json -o generated
