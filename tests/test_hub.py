"""Finding checkpoints: local folders, tiny-random written once, and hub models through huggingface_hub's cache.

No test touches the network: both caches are temporary folders, HF_HUB_OFFLINE is set, and the hub endpoint
points at a closed port on this machine. A "warm" cache is built here in huggingface_hub's own layout
(models--org--name/blobs, snapshots/<commit>/ symlinks, refs/main) and checked with its scan_cache_dir.
"""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checkpoints import assert_same_params, sha256

import tinyprompt
from tinyprompt import hub
from tinyprompt.errors import TinyPromptError
from tinyprompt.hub import find_weights
from tinyprompt.weights import load_params

pytestmark = pytest.mark.usefixtures("no_network")
COMMIT = "607a30d783dfa663caf39e06633721c8d4cfcd7e"  # any 40 hex digits: the cache names snapshots by commit


def warm_cache(cache: Path, repo_id: str, source: Path) -> Path:
    """Put a checkpoint folder's files into a Hugging Face cache as a download would: each file's bytes in
    blobs/<sha256>, a relative symlink to it in snapshots/<commit>/, and refs/main naming that commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(source.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_tiny_random_is_written_once_into_the_user_cache(tmp_path, monkeypatch):
    directory = find_weights("tiny-random")
    assert directory == tmp_path / "weights" / "tiny-random"  # TINYPROMPT_CACHE, set by no_network
    assert {p.name for p in directory.parent.iterdir()} == {"tiny-random"}  # no temporary folder left
    assert "RANDOM" in (directory / "README.md").read_text()
    assert (directory / "tokenizer.json").is_file()
    config, params = load_params(directory)
    assert config == hub.TINY_RANDOM
    assert params["h"][0]["attn"]["c_attn"]["weight"].shape == (64, 192)
    stamp = (directory / "model.safetensors").stat().st_mtime_ns
    assert find_weights("tiny-random") == directory
    assert (directory / "model.safetensors").stat().st_mtime_ns == stamp  # not rewritten
    monkeypatch.setenv("TINYPROMPT_CACHE", str(tmp_path / "other"))
    assert sha256(find_weights("tiny-random") / "model.safetensors") == sha256(directory / "model.safetensors")


def test_the_tinyprompt_cache_is_the_users_never_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYPROMPT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_root() == tmp_path / "xdg" / "tinyprompt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hub.cache_root() == Path.home() / ".cache" / "tinyprompt"
    package = Path(tinyprompt.__file__).parent
    assert package not in hub.cache_root().parents and package.parent not in hub.cache_root().parents


def test_local_folder_is_used_as_is(small):
    directory, _ = small
    assert find_weights(directory) == directory
    assert find_weights(str(directory)) == directory
    with pytest.raises(TinyPromptError, match="no such folder"):
        find_weights("./no/such/folder")
    (directory / "model.safetensors").unlink()
    with pytest.raises(TinyPromptError, match="has no model.safetensors"):
        find_weights(directory)


@pytest.mark.parametrize("name", ["gpt2", "openai-community/gpt2"])
def test_offline_with_a_warm_cache_just_works(name, small, tmp_path):
    from huggingface_hub import scan_cache_dir

    source, params = small
    snapshot = warm_cache(tmp_path / "hf", "openai-community/gpt2", source)
    repos = scan_cache_dir(tmp_path / "hf").repos  # huggingface_hub agrees it is a well-formed cache
    assert [(r.repo_id, sorted(f.file_name for r2 in r.revisions for f in r2.files)) for r in repos] == [
        ("openai-community/gpt2", ["config.json", "model.safetensors"])]
    assert find_weights(name) == snapshot
    assert_same_params(load_params(find_weights(name))[1], params)
    assert tinyprompt.load_model(name).config.n_embd == 16


def test_aliases_are_the_hub_ids():
    assert hub.repo_id("gpt2") == "openai-community/gpt2"
    assert hub.repo_id("distilgpt2") == "distilbert/distilgpt2"
    assert hub.repo_id("gpt2-xl") == "openai-community/gpt2-xl"
    assert hub.repo_id("some-org/model") == "some-org/model"


def test_a_cached_repo_without_weights_says_how_to_get_them(small, tmp_path):
    source, _ = small
    (source / "model.safetensors").unlink()  # e.g. only the tokenizer was ever fetched by transformers
    warm_cache(tmp_path / "hf", "openai-community/gpt2", source)
    with pytest.raises(TinyPromptError, match=r"has no model.safetensors.*`tinyprompt download gpt2` fetches it"):
        find_weights("gpt2")


@pytest.mark.parametrize("name", ["gpt2", "some-org/model"])
def test_offline_with_a_cold_cache_fails_in_one_line_saying_what_to_do(name, tmp_path):
    start = time.perf_counter()
    with pytest.raises(TinyPromptError) as error:
        find_weights(name)
    assert time.perf_counter() - start < 3
    message = str(error.value)
    assert "\n" not in message and "not in the Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert f"`tinyprompt download {name}`" in message and "--model tiny-pretrained" in message
    assert str(tmp_path / "hf") in message


def test_unreachable_hub_fails_fast(tmp_path):
    """Online mode against a closed port: in a fresh process, as huggingface_hub reads the env at import."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = "from tinyprompt.hub import find_weights; find_weights('gpt2')"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=False)  # it must fail; stderr says how
    assert time.perf_counter() - start < 10  # ~2 s of it is starting Python; retries would take ~25 s
    assert "TinyPromptError: 'gpt2' (openai-community/gpt2) is not in the Hugging Face cache" in run.stderr
    assert "the hub cannot be reached" in run.stderr, run.stderr  # the request was really made, and failed


def test_unreachable_hub_with_a_warm_cache_uses_the_cache(small, tmp_path):
    """No network but HF_HUB_OFFLINE not set (a laptop on a train): the cached snapshot, without an error."""
    snapshot = warm_cache(tmp_path / "hf", "openai-community/gpt2", small[0])
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_CACHE"] = str(tmp_path / "hf")
    code = "from tinyprompt.hub import find_weights; print(find_weights('gpt2'))"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0 and run.stdout.strip() == str(snapshot), run.stderr


def test_download_to_copies_a_self_contained_folder(small, tmp_path):
    source, params = small
    warm_cache(tmp_path / "hf", "openai-community/gpt2", source)
    copy = hub.download("gpt2", tmp_path / "weights" / "gpt2")
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert not (copy / "model.safetensors").is_symlink()  # the bytes, not a link into the cache
    assert_same_params(load_params(copy)[1], params)
    assert hub.download("tiny-random", tmp_path / "tr") == tmp_path / "tr"
    assert sha256(tmp_path / "tr" / "model.safetensors") == sha256(find_weights("tiny-random") / "model.safetensors")


def test_cli_resolves_gpt2_from_the_cache_with_hf_hub_offline(tmp_path):
    """The whole path a user takes: `--model gpt2`, HF_HUB_CACHE and HF_HUB_OFFLINE=1 read by a fresh process."""
    snapshot = warm_cache(tmp_path / "hf", "openai-community/gpt2", find_weights("tiny-random"))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "tinyprompt"]
    run = subprocess.run([*command, "download", "gpt2"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0 and run.stdout.strip() == f"gpt2: {snapshot}", run.stderr
    run = subprocess.run([*command, "generate", "--model", "gpt2", "--max-new-tokens", "3", "Hello"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and run.stdout.startswith("Hello"), run.stderr
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    run = subprocess.run([*command, "generate", "--model", "gpt2", "Hello"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "tinyprompt download gpt2" in run.stderr


def test_the_modules_import_each_other_without_a_cycle():
    """Every import between tinyprompt's modules, also those inside functions, as a graph: it has no cycle
    (hub -> weights -> tokenizer -> hub was one). __init__ and __main__ import everything, so they are left out."""
    import ast

    package = Path(tinyprompt.__file__).parent
    graph = {}
    for file in package.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("tinyprompt")):
                module = (node.module or "").removeprefix("tinyprompt").lstrip(".")
                names |= {module} if module else {alias.name for alias in node.names}
        graph[file.stem] = names - {"__init__", "__main__"}
    graph.pop("__init__"), graph.pop("__main__")
    done, path = set(), []

    def visit(module):
        assert module not in path, f"import cycle: {' -> '.join(path[path.index(module):] + [module])}"
        if module not in done:
            path.append(module)
            for imported in graph.get(module, ()):
                visit(imported)
            path.pop()
            done.add(module)

    for module in graph:
        visit(module)
    assert "hub" in graph["api"] and "weights" in graph["hub"]  # the graph was really read
