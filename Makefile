# The two commands a newcomer needs: `make demo` and `make test`. Both create the environment
# when it is missing, so nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv

.PHONY: env demo test bench clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --python $(PY) -e '.[test]'
	touch $@

demo: env
	$(PY) notebooks/run.py notebooks/quickstart.ipynb

test: env
	$(PY) -m pytest tests

bench: env
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
