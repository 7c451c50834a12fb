# Every target works alone on a fresh machine: it creates .venv if missing and installs what it needs.
PY := .venv/bin/python
STAMP := .venv/.installed-core
REF_STAMP := .venv/.installed-reference
# `make demo`: tiny-pretrained, shipped in the package (~1 minute); `make demo MODEL=gpt2`: the real GPT-2
# (500 MB, downloaded once; it says how long it will take, then shows progress)
MODEL ?= tiny-pretrained

.PHONY: demo test test-reference test-reference-latest lint bench quality tradeoffs pretrain book clean

$(PY):
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The reference extra pins torch, transformers and peft exactly (pyproject.toml): a looser torch pulls a
# multi-GB CUDA build, and transformers/peft move their internals between releases.
$(REF_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[test,reference]'
	touch $@

demo: $(STAMP)
	$(PY) -m tinyprompt.demo --model $(MODEL)

test: $(STAMP)
	$(PY) -m pytest -q

test-reference: $(REF_STAMP)
	$(PY) -m pytest -q -m reference

# Not in CI: the reference suite against the NEWEST transformers and peft (torch stays 2.13.0, CPU), in a
# venv of its own, to learn early when the world moves. Prints the versions and the tests that break.
LATEST := .venv-latest/bin/python
test-reference-latest:
	test -x $(LATEST) || python3 -m venv .venv-latest
	$(LATEST) -m pip install -q --upgrade pip
	$(LATEST) -m pip install -q -e '.[test]' torch==2.13.0
	$(LATEST) -m pip install -q --upgrade transformers peft
	$(LATEST) -c "import transformers, peft, torch; print('newest: transformers', transformers.__version__, \
		'peft', peft.__version__, 'torch', torch.__version__)"
	$(LATEST) -m pytest -q -m reference -rf -p no:cacheprovider || \
		{ echo "the tests above break with the newest transformers/peft (pinned: see pyproject.toml)"; exit 1; }

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench.py

# Task quality of prompt tuning on tiny-pretrained, against zero-shot, hard prompts and PEFT (needs torch).
quality: $(REF_STAMP)
	$(PY) benchmarks/quality.py

# Prompt tuning against a hard prompt, LoRA and full fine-tuning on tiny-pretrained: parameters, bytes, step cost,
# accuracy, data efficiency, continual learning, task switching (no torch; resumable: see the script's --help).
tradeoffs: $(STAMP)
	$(PY) benchmarks/tradeoffs.py

# Rebuild tinyprompt/assets/tiny-pretrained from scratch (torch; ~25 minutes on 2 cores).
pretrain: $(REF_STAMP)
	$(PY) pretrain/pretrain.py

# The lessons as a static HTML book in lessons/out/book/ (open index.html; no network needed): every lesson run
# as a notebook, full runs; QUICK=1 builds from the --quick runs (lessons/book.py, extra `book`).
BOOK_STAMP := .venv/.installed-book
$(BOOK_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[test,book]'
	touch $@

book: $(BOOK_STAMP)
	$(PY) lessons/book.py $(if $(QUICK),--quick)

clean:
	rm -rf .venv .venv-latest weights/*/ lessons/out runs
