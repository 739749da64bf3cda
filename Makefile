# Two commands set up everything on a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(filter-out %.tmp.ipynb,$(wildcard notebooks/[0-9][0-9]*_*.ipynb)))
# the system OpenBLAS, preloaded so MLX does not use its slow bundled BLAS (see spike_lib/blas.py);
# recursive (=) so it is looked up after the set-up has installed it
OPENBLAS = $(firstword $(wildcard /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3))
PRELOAD = $(if $(OPENBLAS),LD_PRELOAD=$(OPENBLAS))
# tests and quick-mode notebooks use small matrices: one BLAS thread is faster and steadier
TESTENV = SPIKE_QUICK=1 OPENBLAS_NUM_THREADS=1 $(PRELOAD)

# JupyterLab refuses to start as root (e.g. in Docker) unless told to
ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: book test lab setup pytest notebooks browser full clean help

help:
	@echo "make book   set up .venv and build the HTML book into _build/html"
	@echo "make test   set up .venv, run tests/, every notebook (quick mode), the book build and"
	@echo "            the browser tests (tests/browser: the built pages and JupyterLab in Chromium)"
	@echo "make browser  only the browser tests (builds the book first)"
	@echo "make lab    open JupyterLab on the course (with the .venv kernel, as root too)"
	@echo "make full   re-run chapters in full mode, storing outputs (NB=notebooks/01_*.ipynb for one)"

$(STAMP): requirements.txt pyproject.toml scripts/setup.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh

setup: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build -W -n --keep-going --path-output . .
	@echo "book: file://$(CURDIR)/_build/html/index.html"

pytest: $(STAMP)
	$(TESTENV) $(PY) -m pytest tests --ignore=tests/browser

notebooks: $(STAMP)
	$(TESTENV) $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(NOTEBOOKS)

# headless Chromium on the built book at 1280 and 390 px, and a JupyterLab smoke test; the
# set-up installs Debian's chromium and chromium-driver as root, else the tests say what is missing
browser: book
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh --browser
	$(TESTENV) $(PY) -m pytest tests/browser

test: pytest notebooks book browser

full: $(STAMP)  # re-run chapters in full mode and store their outputs: make full NB=notebooks/01_*.ipynb
	$(PRELOAD) $(PY) scripts/execute_notebook.py $(or $(NB),$(NOTEBOOKS))

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/

clean:
	rm -rf _build .pytest_cache
