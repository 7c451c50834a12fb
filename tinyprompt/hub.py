"""Where checkpoints come from: a local folder, a model tinyprompt ships or writes, or the Hugging Face hub.

`find_weights(name_or_path)` always ends in a folder with `config.json` and `model.safetensors`, which
`weights.load_params` then memory-maps (`load_model` does both, `load_tokenizer` finds the model's tokenizer):

    find_weights("path/to/folder")   # a local checkpoint folder, used as is
    find_weights("tiny-pretrained")  # tinyprompt/assets/tiny-pretrained/: a small GPT-2 pretrained here
    find_weights("tiny-random")      # ~/.cache/tinyprompt/tiny-random/: RANDOM weights, written once
    find_weights("gpt2")             # openai-community/gpt2 in the Hugging Face cache, downloaded once

Hub models go through huggingface_hub itself: its cache (~/.cache/huggingface/hub, moved by HF_HOME or
HF_HUB_CACHE) is shared with transformers and PEFT, HF_HUB_OFFLINE=1 uses that cache without any request,
and downloads show its progress bars. Nothing is ever written into the package or the repo; a copy in a
folder of your choice is `tinyprompt download gpt2 --to DIR`.
"""

import os
import re
import shutil
from pathlib import Path

import numpy as np

from tinyprompt import validate
from tinyprompt.errors import InvalidType, TinyPromptError
from tinyprompt.gpt2 import GPT2
from tinyprompt.tokenizer import Tokenizer, write_tokenizer_json
from tinyprompt.tokenizer import load_tokenizer as tokenizer_of_folder
from tinyprompt.weights import GPT2Config, load_params, random_params, save_checkpoint

# The short names that transformers still accepts, and the hub ids they now live under.
ALIASES = {"gpt2": "openai-community/gpt2", "gpt2-medium": "openai-community/gpt2-medium",
           "gpt2-large": "openai-community/gpt2-large", "gpt2-xl": "openai-community/gpt2-xl",
           "distilgpt2": "distilbert/distilgpt2"}
HUB_FILES = ["config.json", "model.safetensors", "tokenizer.json"]  # tokenizer.json is optional
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "gpt2", "openai-community/gpt2"
TINY_RANDOM = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=64, n_layer=2, n_head=4)
# A 4-layer GPT-2 with the real tokenizer, pretrained by tools/pretrain_tiny.py and shipped in the package:
# the offline model on which prompt tuning has abilities to trigger (tiny-random has none).
TINY_PRETRAINED = Path(__file__).resolve().parent / "assets" / "tiny-pretrained"


def repo_id(name: str) -> str:
    """The hub id of a name: "gpt2" -> "openai-community/gpt2"; any other name is returned as is."""
    return ALIASES.get(name, name)


def cache_root() -> Path:
    """Where tinyprompt writes the models it makes itself (tiny-random): $TINYPROMPT_CACHE, else
    $XDG_CACHE_HOME/tinyprompt, else ~/.cache/tinyprompt. Never the package (site-packages) nor the repo."""
    if root := os.environ.get("TINYPROMPT_CACHE"):
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "tinyprompt"


def find_weights(name_or_path, local_files_only=False) -> Path:
    """The checkpoint folder of a local path, "tiny-pretrained", "tiny-random", or a hub name or alias.

    local_files_only=True never downloads: a hub model must already be in the Hugging Face cache."""
    name = str(name_or_path)
    if name == "tiny-pretrained":
        return _check_folder(TINY_PRETRAINED)
    if name == "tiny-random":
        return _tiny_random()
    if Path(name).expanduser().is_dir():
        return _check_folder(Path(name).expanduser())
    if not HUB_NAME.fullmatch(name):
        raise TinyPromptError(f"{name}: no such folder, and not a Hugging Face hub name")
    return _check_folder(_snapshot(name, local_files_only=local_files_only), name)


def load_model(name_or_path="gpt2", dtype=np.float32) -> GPT2:
    """A frozen GPT-2 by hub name ("gpt2", "distilgpt2", "org/name"), local folder, "tiny-pretrained" or
    "tiny-random". float32 weights are used in place (a read-only memory map); another dtype makes a copy.
    `model.logits(input_ids [B, T], prompt [P, C])` -> [B, P+T, V]."""
    validate.path("name_or_path", name_or_path)
    if not (isinstance(dtype, type) and dtype in (np.float16, np.float32, np.float64)):
        raise InvalidType(f"dtype {validate.shown(dtype)}: must be np.float16, np.float32 or np.float64")
    config, params = load_params(find_weights(name_or_path))
    model = GPT2(config, params, str(name_or_path))
    return model if model.dtype == dtype else model.astype(dtype)


def load_tokenizer(name_or_path=None) -> Tokenizer:
    """The tokenizer of a model (its folder's tokenizer.json), else the bundled GPT-2 one. Never downloads:
    a hub model that is not in the cache gets the bundled tokenizer, which every GPT-2 size shares."""
    folder = None
    if validate.path("name_or_path", name_or_path, optional=True) is not None:
        try:
            folder = find_weights(name_or_path, local_files_only=True)
        except TinyPromptError:  # not on this machine: load_model will say so, if it is ever asked for
            pass
    return tokenizer_of_folder(folder)


def download(name_or_path, to=None) -> Path:
    """Make sure a model is on this machine (a hub model: in the Hugging Face cache); with `to`, also copy
    its files into that folder, e.g. for a machine without network."""
    folder = find_weights(name_or_path)
    return folder if to is None else _copy_checkpoint(folder, Path(to).expanduser())


def _check_folder(directory: Path, name=None) -> Path:
    for file in ("config.json", "model.safetensors"):
        if not (directory / file).is_file():
            hint = f"; `tinyprompt download {name}` fetches it" if name else ""
            raise TinyPromptError(f"{directory} has no {file}: a checkpoint folder needs config.json and "
                                  f"model.safetensors{hint}")
    return directory


def _snapshot(name: str, local_files_only=False, local_dir=None) -> Path:
    # Imported here: huggingface_hub takes ~0.5 s to import and most runs use a local folder.
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = repo_id(name)
    shown = repr(name) if repo == name else f"'{name}' ({repo})"
    try:
        # Cached files are used without a download; offline, or with the hub unreachable, only they are.
        return Path(snapshot_download(repo, allow_patterns=HUB_FILES, local_files_only=local_files_only,
                                      local_dir=local_dir))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
        raise TinyPromptError(
            f"{shown} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: run "
            f"`tinyprompt download {name}` on a machine with network and copy that cache folder here "
            "(or point HF_HUB_CACHE at it), or use --model tiny-pretrained") from None
    # Anything else (unknown or gated repo, HTTP error) ends the same way; the exception classes differ
    # between huggingface_hub versions (requests in 0.x, httpx in 1.x and later), so catch them all.
    except Exception as e:  # noqa: BLE001
        first_line = (str(e).splitlines() or ["no details"])[0][:160]
        raise TinyPromptError(f"could not download {shown} from the Hugging Face hub "
                              f"({type(e).__name__}: {first_line})") from None


def _tiny_random() -> Path:
    """tiny-random, written once into the user's cache (built beside and renamed: never half written)."""
    target = cache_root() / "tiny-random"
    if target.is_dir():
        return _check_folder(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_checkpoint(tmp, TINY_RANDOM, random_params(TINY_RANDOM, seed=0))
        (tmp / "README.md").write_text(
            "# tiny-random: RANDOM weights, not a trained model\n\nThese weights are random numbers "
            "(seed 0), written by tinyprompt for fast tests and demos: the model talks gibberish.\n"
            "GPT-2's architecture and tokenizer at a tiny size: 2 layers, 4 heads, 64 channels.\n")
        os.replace(tmp, target)
    except OSError as e:
        if not target.is_dir():  # else another process won the race, and its copy is as good
            raise TinyPromptError(f"cannot write tiny-random into {target.parent} ({e}); "
                                  "set TINYPROMPT_CACHE to a writable folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _copy_checkpoint(source: Path, to: Path) -> Path:
    """Copy a checkpoint folder's files into `to`, each written beside and renamed into place."""
    to.mkdir(parents=True, exist_ok=True)
    for file in HUB_FILES + ["README.md"]:
        if (source / file).is_file():
            tmp = to / f".{file}.tmp"
            shutil.copyfile(source / file, tmp)
            os.replace(tmp, to / file)
    if not (source / "tokenizer.json").is_file():  # a self-contained folder, as transformers expects
        write_tokenizer_json(to / "tokenizer.json")
    return to
