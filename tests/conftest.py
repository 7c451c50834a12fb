"""Fixtures shared by several test files, and which files the core suite collects."""

import json
from importlib.util import find_spec

import pytest
from checkpoints import SMALL

import tinyprompt
from tinyprompt.weights import random_params, save_checkpoint

TOY_ROWS = [{"input": f"Q: {a} plus {b}?\nA:", "output": f" {a + b}"} for a in range(3) for b in range(3)]

# The reference suite compares with torch + transformers + PEFT (the `reference` extra, installed by
# `make test-reference`). Without torch its files are not collected at all, rather than reported as skipped.
if find_spec("torch") is None:
    collect_ignore_glob = ["test_reference*.py"]


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Both caches (tinyprompt's, Hugging Face's) under tmp_path, and every way to the hub closed: a test that
    tries the network fails fast. huggingface_hub reads its environment once, at import: set both."""
    from huggingface_hub import constants

    monkeypatch.setenv("TINYPROMPT_CACHE", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed port: any request fails at once
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture
def small(tmp_path):
    """A small checkpoint folder (hub layout) and the params written into it."""
    params = random_params(SMALL, seed=1)
    return save_checkpoint(tmp_path / "small", SMALL, params, tokenizer=False), params


@pytest.fixture(scope="module")
def model():
    """tiny-random, loaded once per test file."""
    return tinyprompt.load_model("tiny-random")


@pytest.fixture(scope="module")
def tok():
    return tinyprompt.load_tokenizer("tiny-random")


@pytest.fixture
def toy(tmp_path):
    """A 9-row JSONL file of sums (pair rows): with batch 3, three steps per epoch."""
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TOY_ROWS))
    return path
