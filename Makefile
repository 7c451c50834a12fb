# Every target works alone on a fresh machine: it creates .venv if missing and installs what it needs.
PY := .venv/bin/python
STAMP := .venv/.installed-core
REF_STAMP := .venv/.installed-reference
MODEL ?= gpt2

.PHONY: demo test test-reference lint bench clean

$(PY):
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# torch is pinned to 2.13.0 in pyproject.toml: a looser pin pulls a multi-GB CUDA build.
$(REF_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[test,reference]'
	touch $@

demo: $(STAMP)
	$(PY) -m tinyprompt.demo --model $(MODEL)

test: $(STAMP)
	$(PY) -m pytest -q

test-reference: $(REF_STAMP)
	$(PY) -m pytest -q -m reference

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench.py

clean:
	rm -rf .venv weights/*/ lessons/out runs
