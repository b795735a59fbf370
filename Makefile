# `make demo` / `make test` create .venv on a fresh machine, then run the demo / the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv browser demo test test-fast lint format clean

venv: $(VENV)/.installed

# torch and torchvision are pinned: these two releases are served from local
# files here, any other downloads gigabytes. basicsr 1.4.2 ships only an sdist
# whose setup.py wants torch at build time, hence --no-build-isolation after torch.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-build-isolation basicsr==1.4.2
	$(PY) -m pip install -q --no-build-isolation -e '.[video,safetensors,onnx,web,spandrel,test]'
	touch $@

demo: venv
	$(VENV)/bin/cnlrn demo

# Debian's Chromium and its driver, for the browser test of `cnlrn serve` (installed where missing)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }

# everything (CI runs this through .ci/run)
test: venv browser
	$(PY) -m pytest -q tests

# the tests that start no processes: the loop to run while editing
test-fast: venv
	$(PY) -m pytest -q -m 'not slow' tests

# ruff, and import-linter's layer contract of pyproject.toml (see docs/architecture.md)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
