"""Where checkpoints come from: a local folder, the tiny random model, or a download from the HF hub.

`find_weights(name_or_path)` always ends in a folder with `config.json` and `model.safetensors`, which
`weights.load_params` then memory-maps:

    find_weights("path/to/folder")        # a local checkpoint folder, used as is
    find_weights("tiny-random")           # weights/tiny-random/: RANDOM weights, written once, offline
    find_weights("tiny-pretrained")       # tinyprompt/assets/tiny-pretrained/: a small GPT-2 pretrained here
    find_weights("openai-community/gpt2") # weights/openai-community--gpt2/: downloaded once

The weights folder is $TINYPROMPT_WEIGHTS, else weights/ in the repo. A download never leaves half a
checkpoint behind: it fills "<name>.partial" and renames it when complete. Offline (HF_HUB_OFFLINE=1) or
with the hub unreachable, it fails within seconds with one line saying where to copy the files by hand.
"""

import os
import re
import shutil
from pathlib import Path

from tinyprompt.errors import TinyPromptError
from tinyprompt.weights import GPT2Config, random_params, save_checkpoint

TINY_RANDOM = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=64, n_layer=2, n_head=4)
HUB_FILES = ("config.json", "model.safetensors", "tokenizer.json")  # tokenizer.json is optional
# A 4-layer GPT-2 with the real tokenizer, pretrained by tools/pretrain_tiny.py and shipped in the package:
# the offline model on which prompt tuning has abilities to trigger (tiny-random has none).
TINY_PRETRAINED = Path(__file__).resolve().parent / "assets" / "tiny-pretrained"
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "gpt2", "openai-community/gpt2"


def weights_root() -> Path:
    """$TINYPROMPT_WEIGHTS, else the repo's weights/ folder."""
    return Path(os.environ.get("TINYPROMPT_WEIGHTS") or Path(__file__).resolve().parent.parent / "weights")


def weights_dir(name: str) -> Path:
    """Where the checkpoint called `name` lives: "openai-community/gpt2" -> weights/openai-community--gpt2."""
    return weights_root() / name.replace("/", "--")


def _check_folder(directory: Path) -> Path:
    for file in ("config.json", "model.safetensors"):
        if not (directory / file).is_file():
            raise TinyPromptError(f"{directory} has no {file}: a checkpoint folder needs config.json and "
                                  "model.safetensors")
    return directory


def find_weights(name_or_path) -> Path:
    """The checkpoint folder for a local path, "tiny-random", or a hub name (downloaded once)."""
    name = str(name_or_path)
    if name == "tiny-pretrained":
        return _check_folder(TINY_PRETRAINED)
    if Path(name).expanduser().is_dir():
        return _check_folder(Path(name).expanduser())
    if name != "tiny-random" and not HUB_NAME.fullmatch(name):
        raise TinyPromptError(f"{name}: no such folder, and not a Hugging Face hub name")
    target = weights_dir(name)
    if target.is_dir():
        return _check_folder(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TinyPromptError(f"cannot create {target.parent} ({e}); "
                              "set TINYPROMPT_WEIGHTS to a writable folder") from None
    if name == "tiny-random":
        _write_tiny_random(target)
    else:
        _download(name, target)
    return target


def _write_tiny_random(target: Path):
    # Built in a temporary folder and renamed into place: a crash never leaves half a checkpoint.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_checkpoint(tmp, TINY_RANDOM, random_params(TINY_RANDOM, seed=0))
        (tmp / "README.md").write_text(
            "# tiny-random: RANDOM weights, not a trained model\n\nThese weights are random numbers "
            "(seed 0), written by tinyprompt for fast tests and demos: the model talks gibberish.\n"
            "GPT-2's architecture and tokenizer at a tiny size: 2 layers, 4 heads, 64 channels.\n")
        os.replace(tmp, target)
    except OSError:
        if not target.is_dir():  # else another process won the race, and its copy is as good
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").upper() in ("1", "ON", "YES", "TRUE"):
            return f"{var} is set"
    return None


def _download(repo_id: str, target: Path):
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url  # slow import: only here
    from huggingface_hub.errors import EntryNotFoundError  # in huggingface_hub.errors since 0.25

    def cannot(reason):
        folder = f"{os.path.relpath(target) if target.is_relative_to(Path.cwd()) else target}/"
        return TinyPromptError(f"could not download '{repo_id}' from the Hugging Face hub ({reason}). Copy "
                               f"config.json and model.safetensors into {folder}, or use --model tiny-random")

    if reason := _offline_reason():
        raise cannot(reason)
    endpoint = os.environ.get("HF_ENDPOINT")  # read now: huggingface_hub reads it once, at import
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 10)
    try:
        # One request without retries first: hf_hub_download retries a dead network for ~25 s.
        get_hf_file_metadata(hf_hub_url(repo_id, "config.json", endpoint=endpoint), timeout=timeout)
    # Any error (no network, unknown or gated repo) ends the same way; the exception classes differ
    # between huggingface_hub versions (requests, httpx), so catch them all.
    except Exception as e:  # noqa: BLE001
        first_line = (str(e).splitlines() or ["no details"])[0][:120]
        raise cannot(f"{type(e).__name__}: {first_line}") from None
    # Into "<name>.partial" first (a rerun resumes there), renamed when complete.
    partial = target.with_name(target.name + ".partial")
    for file in HUB_FILES:
        try:
            hf_hub_download(repo_id, file, local_dir=partial, endpoint=endpoint, etag_timeout=timeout)
        except EntryNotFoundError:
            if file != "tokenizer.json":  # without one we use the bundled GPT-2 tokenizer
                raise cannot(f"the repo has no {file}") from None
        except Exception as e:  # noqa: BLE001 (as above)
            raise cannot(f"{type(e).__name__} while fetching {file}") from None
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping for resuming
    os.replace(partial, target)
