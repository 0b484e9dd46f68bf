# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned here, not in pyproject: a loose range would pull a multi-GB CUDA build from PyPI.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-rehearsal lint clean

$(BIN)/annotator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/annotator

demo: install
	$(BIN)/annotator demo

lint: install
	$(BIN)/ruff check annotator tests bench

# the browser tests drive Debian's Chromium (Playwright without its own browser download)
test: install lint
	@command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null
	$(BIN)/pytest -q -m "not rehearsal"

# the production pipelines at production model size on CPU (about 10 minutes; not part of `make test`)
test-rehearsal: install
	$(BIN)/pytest -q -m rehearsal

clean:
	rm -rf $(VENV) runs .pytest_cache
