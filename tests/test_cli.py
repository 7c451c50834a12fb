"""The `tinyprompt` command as a user meets it: a fresh process, its exit status, stdout and stderr.

Every bad input must end in exit status 2 and exactly one line `error: ...` on stderr, never a traceback.
No test touches the network: HF_HUB_OFFLINE is set, the hub endpoint is a closed local port, and the
tinyprompt and Hugging Face caches are temporary ones (tiny-random is written there on first use, ~0.3 s).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyprompt.hub import TINY_RANDOM


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A working directory for the commands, with the weights folder inside it."""
    return tmp_path_factory.mktemp("cli")


def run(home, *args, command=(sys.executable, "-m", "tinyprompt.cli")):
    env = {**os.environ, "TINYPROMPT_CACHE": str(home / "weights"), "HF_HUB_CACHE": str(home / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([*command, *args], cwd=home, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # the exit status is what is being tested


def test_help(home):
    for args in (["--help"], ["generate", "--help"]):
        result = run(home, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: tinyprompt") and not result.stderr


def test_download_tiny_random_prints_the_folder(home):
    result = run(home, "download", "tiny-random")
    assert result.returncode == 0, result.stderr
    folder = home / "weights" / "tiny-random"
    assert str(folder) in result.stdout
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def test_generate_continues_the_text(home):
    result = run(home, "generate", "--model", "tiny-random", "--max-new-tokens", "5", "Hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello") and len(result.stdout.strip()) > len("Hello")


@pytest.fixture(scope="module")
def corrupt(home):
    """A checkpoint folder with a valid config.json and 100 bytes of garbage as model.safetensors."""
    folder = home / "corrupt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_RANDOM.to_hf_dict()))
    (folder / "model.safetensors").write_bytes(bytes(range(100)))
    return folder


BAD_INPUTS = {  # name: (arguments after `generate`, what the one error line must mention)
    "unknown model offline": (["--model", "gpt2"], "'gpt2' (openai-community/gpt2) is not in the Hugging Face cache"),
    "no such local folder": (["--model", "./no/such/folder"], "no such folder"),
    "corrupt safetensors": (["--model", "{corrupt}"], "model.safetensors: 100 bytes, but config.json describes"),
    "longer than the context": (["--model", "tiny-random", "--max-new-tokens", "2000"], "n_positions=1024"),
    "no such prompt folder": (["--model", "tiny-random", "--prompt", "./no/such/adapter"], "no such adapter"),
}


def assert_one_error_line(result, mention):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert mention in lines[0]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_one_error_line_and_exit_2(home, corrupt, name):
    args, mention = BAD_INPUTS[name]
    result = run(home, "generate", *[a.format(corrupt=corrupt) for a in args], "Hello")
    assert_one_error_line(result, mention)
    assert not result.stdout


def test_console_script_exits_2_on_error(home):
    """`pip install -e .` writes a `tinyprompt` script that calls sys.exit(main()): main's 2 must survive."""
    script = shutil.which("tinyprompt", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the tinyprompt console script is not installed here (pip install -e .)")
    assert_one_error_line(run(home, "generate", "--model", "./no/such/folder", "Hello", command=[script]),
                          "no such folder")
