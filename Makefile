# The two commands a newcomer needs: `make demo` and `make test`. Both create the environment
# when it is missing, so nothing is installed by hand. `make demo` needs only python3; the
# system packages (Chromium, Go, podman ...: hundreds of MB, and root) are installed by
# `make test` and `make bench`, for the tests and benchmarks that drive them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv

.PHONY: env system-deps demo test bench clean

# The Python environment only: what the demo needs.
env: $(VENV)/.installed

# Debian packages the tests drive: headless Chromium and its WebDriver (tests/browser/).
# Fast when present; installs them otherwise (CI and developers run as root).
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver)
	@# tests/events: the Go toolchain and govmomi's sources build VMware's vCenter simulator (tests/vcsim/).
	@command -v go >/dev/null && test -d /usr/share/gocode/src/github.com/vmware/govmomi || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go golang-github-vmware-govmomi-dev)
	@# Containers (tests/images, tests/drivers/test_container.py): podman and its Docker-compatible
	@# service with runc, Debian's OCI registry, and debootstrap for the Python base image.
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v docker-registry >/dev/null && \
		command -v debootstrap >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			podman runc conmon containernetworking-plugins catatonit docker-registry debootstrap)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --python $(PY) -e '.[test]'
	touch $@

demo: env
	$(PY) notebooks/run.py notebooks/quickstart.ipynb

test: system-deps env
	$(PY) -m pytest tests

bench: system-deps env
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
