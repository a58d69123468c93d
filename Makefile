# The two commands a newcomer needs: `make demo` and `make test`. Both create the environment
# when it is missing, so nothing is installed by hand. `make demo` needs only python3; the
# system packages (Chromium, Go, podman ...: hundreds of MB, and root) are installed by
# `make test` and `make bench`, for the tests and benchmarks that drive them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv

# The JupyterLab panel (extension/, TypeScript): npm installs what package-lock.json pins, and
# @jupyterlab/builder builds it into $(LABEXT), which the venv's JupyterLab loads through a link.
LABEXT := dispatch_kernel/labextension
LABEXT_SOURCES := extension/package.json extension/tsconfig.json extension/install.json \
	$(wildcard extension/src/*.ts extension/src/*.tsx extension/style/*)
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/dispatch-kernel

.PHONY: env system-deps labextension demo test bench clean

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
	@# The JupyterLab panel (extension/) is TypeScript: Node 20 and npm build it.
	@command -v node >/dev/null && command -v npm >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm)
	@# Containers (tests/images, tests/drivers/test_container.py): podman and its Docker-compatible
	@# service with runc, Debian's OCI registry, and debootstrap for the Python base image.
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v docker-registry >/dev/null && \
		command -v debootstrap >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			podman runc conmon containernetworking-plugins catatonit docker-registry debootstrap)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv
	@# The panel's link must not be there while the package installs: its shared data would be
	@# written through the link into the build (make labextension puts the link back).
	test ! -L $(LABEXT_LINK) || rm $(LABEXT_LINK)
	SKIP_JUPYTER_BUILDER=1 $(UV) pip install --quiet --python $(PY) -e '.[test]'
	touch $@

# Node 20 and npm build the panel (a wheel ships it prebuilt: its users need no node).
labextension: $(LABEXT)/package.json
	@mkdir -p $(dir $(LABEXT_LINK))
	@test "$$(readlink $(LABEXT_LINK))" = "$(abspath $(LABEXT))" || \
		(rm -rf $(LABEXT_LINK) && ln -s $(abspath $(LABEXT)) $(LABEXT_LINK))

extension/node_modules/.package-lock.json: extension/package-lock.json
	cd extension && npm ci --no-audit --no-fund

$(LABEXT)/package.json: $(VENV)/.installed extension/node_modules/.package-lock.json $(LABEXT_SOURCES)
	cd extension && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build:prod
	touch $@

# tests/browser/test_hub_login.py: a real OpenID Connect provider (oidc-provider) and JupyterHub's
# proxy (configurable-http-proxy), from npm as package-lock.json pins them.
OIDC_NODE := tests/identity/oidc/node_modules/.package-lock.json
$(OIDC_NODE): tests/identity/oidc/package-lock.json
	cd tests/identity/oidc && npm ci --no-audit --no-fund

demo: env
	$(PY) notebooks/run.py notebooks/quickstart.ipynb

test: system-deps env labextension $(OIDC_NODE)
	$(PY) -m pytest tests

bench: system-deps env
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache extension/node_modules extension/lib $(LABEXT) tests/identity/oidc/node_modules
