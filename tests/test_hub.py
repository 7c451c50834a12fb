"""Finding checkpoints: local folders, tiny-random written once, and downloads that fail fast offline.

No test touches the network: the weights root is a temporary folder, HF_HUB_OFFLINE is set, and the hub
endpoint points at a closed port on this machine; the one download test replaces huggingface_hub's calls.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest
from checkpoints import assert_same_params, sha256

from tinyprompt import hub
from tinyprompt.errors import TinyPromptError
from tinyprompt.hub import find_weights
from tinyprompt.weights import load_params

pytestmark = pytest.mark.usefixtures("no_network")


def test_tiny_random_is_written_once_and_deterministically(tmp_path, monkeypatch):
    directory = find_weights("tiny-random")
    assert directory == tmp_path / "weights" / "tiny-random"
    assert {p.name for p in directory.parent.iterdir()} == {"tiny-random"}  # no temporary folder left
    assert "RANDOM" in (directory / "README.md").read_text()
    assert (directory / "tokenizer.json").is_file()
    config, params = load_params(directory)
    assert config == hub.TINY_RANDOM
    assert params["h"][0]["attn"]["c_attn"]["weight"].shape == (64, 192)
    stamp = (directory / "model.safetensors").stat().st_mtime_ns
    assert find_weights("tiny-random") == directory
    assert (directory / "model.safetensors").stat().st_mtime_ns == stamp  # not rewritten
    monkeypatch.setenv("TINYPROMPT_WEIGHTS", str(tmp_path / "other"))
    assert sha256(find_weights("tiny-random") / "model.safetensors") == sha256(directory / "model.safetensors")


def test_local_folder_is_used_as_is(small):
    directory, _ = small
    assert find_weights(directory) == directory
    assert find_weights(str(directory)) == directory
    with pytest.raises(TinyPromptError, match="no such folder"):
        find_weights("./no/such/folder")
    (directory / "model.safetensors").unlink()
    with pytest.raises(TinyPromptError, match="has no model.safetensors"):
        find_weights(directory)


@pytest.mark.parametrize("name, folder", [("gpt2", "gpt2"), ("openai-community/gpt2", "openai-community--gpt2")])
def test_unknown_name_offline_fails_fast(name, folder):
    start = time.perf_counter()
    with pytest.raises(TinyPromptError) as error:
        find_weights(name)
    assert time.perf_counter() - start < 3
    message = str(error.value)
    assert f"could not download '{name}'" in message and "\n" not in message
    assert f"{folder}/" in message and "--model tiny-random" in message
    assert not (hub.weights_root() / folder).exists()


def test_unreachable_hub_fails_fast(tmp_path):
    """Online mode against a closed port: in a fresh process, as huggingface_hub reads the env at import."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = "from tinyprompt.hub import find_weights; find_weights('gpt2')"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=False)  # it must fail; stderr says how
    assert time.perf_counter() - start < 10  # ~1 s of it is starting Python; retries would take ~25 s
    assert "TinyPromptError: could not download 'gpt2'" in run.stderr
    assert "OFFLINE" not in run.stderr, run.stderr  # the request was really made, and failed


def test_download_goes_to_a_partial_folder_then_into_place(monkeypatch, small, tmp_path):
    """The download itself with huggingface_hub replaced by a local copy."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    source, params = small
    monkeypatch.delenv("HF_HUB_OFFLINE")
    seen = []

    def fake_download(repo_id, filename, local_dir, **kwargs):
        seen.append((repo_id, filename, local_dir.name))
        if not (source / filename).exists():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        (local_dir / ".cache").mkdir(parents=True, exist_ok=True)
        return shutil.copy(source / filename, local_dir / filename)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url, **kwargs: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    directory = find_weights("some-org/small")
    assert directory == tmp_path / "weights" / "some-org--small"
    assert seen == [("some-org/small", f, "some-org--small.partial") for f in hub.HUB_FILES]
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    assert not (tmp_path / "weights" / "some-org--small.partial").exists()
    assert_same_params(load_params(directory)[1], params)
    seen.clear()
    assert find_weights("some-org/small") == directory and not seen  # downloaded once
