"""Hostile input at the command line: odd text, odd numbers, tampered model files, wrong flags.

Every case must end in exit status 2 and exactly one stderr line `error: ...` that names the offending
flag, file, line or value; never a traceback, and a tune that fails leaves no folder behind. The commands run in-process (cli.main) with tiny-random from
a temporary cache and the hub closed; the surrogate case also runs as a real process, whose argv arrives
from the OS with surrogateescape.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from checkpoints import SMALL

from tinyprompt import cli
from tinyprompt.prompt import save_prompt
from tinyprompt.tokenizer import write_tokenizer_json
from tinyprompt.weights import GPT2Config, random_params, save_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every hostile file the table refers to, by name, written once."""
    root = tmp_path_factory.mktemp("hostile")
    paths = {}

    def text_file(name, text):
        paths[name] = root / f"{name}.jsonl"
        paths[name].write_text(text, encoding="utf-8")

    text_file("good", '{"input": "1 plus 1?", "output": " 2"}\n')
    text_file("bigint", '{"input": "a", "output": " b", "n": ' + "9" * 5001 + "}\n")
    text_file("nested", '{"input": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    model = save_checkpoint(root / "model", SMALL, random_params(SMALL))
    config = json.loads((model / "config.json").read_text())
    for name, change in {"n_layer_huge": {"n_layer": 10**9}, "n_layer_float": {"n_layer": 1e9},
                         "n_embd_huge": {"n_embd": 2**40, "n_head": 1}, "eps_null": {"layer_norm_epsilon": None},
                         "eps_text": {"layer_norm_epsilon": "tiny"}, "more_layers": {"n_layer": 40}}.items():
        folder = root / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        (folder / "model.safetensors").symlink_to(model / "model.safetensors")
    paths.update({name: root / name for name in ("n_layer_huge", "n_layer_float", "n_embd_huge", "eps_null",
                                                 "eps_text", "more_layers")})
    # a tokenizer.json whose vocabulary lacks <|endoftext|>
    no_eos = save_checkpoint(root / "no_eos", SMALL, random_params(SMALL), tokenizer=False)
    tok = json.loads(write_tokenizer_json(root / "tokenizer.json").read_text())
    tok["model"]["vocab"].pop("<|endoftext|>")
    tok["added_tokens"] = [t for t in tok.get("added_tokens", []) if t["content"] != "<|endoftext|>"]
    (no_eos / "tokenizer.json").write_text(json.dumps(tok))
    paths["no_eos"] = no_eos
    # a safetensors header whose offsets point past the end of the file
    lying = save_checkpoint(root / "lying", SMALL, random_params(SMALL), tokenizer=False)
    data = (lying / "model.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    begin, end = header["wte.weight"]["data_offsets"]
    header["wte.weight"]["data_offsets"] = [begin + len(data), end + len(data)]
    new = json.dumps(header).encode()
    (lying / "model.safetensors").write_bytes(len(new).to_bytes(8, "little") + new + data[8 + n :])
    paths["lying"] = lying
    # an adapter made for a hub model, to be inspected offline
    paths["adapter"] = root / "adapter"
    save_prompt(paths["adapter"], np.ones((2, 64), np.float32), GPT2Config(50257, 1024, 64, 2, 2),
                base_model_name_or_path="gpt2")
    # a soft prompt made for tiny-random that fills more than its context of 1024 positions
    paths["long_prompt"] = root / "long_prompt"
    save_prompt(paths["long_prompt"], np.zeros((1100, 64), np.float32), GPT2Config(50257, 1024, 64, 2, 4),
                base_model_name_or_path="tiny-random")
    # issue 23: rows whose metric means nothing, data that is no file, a LoRA adapter, a 10-token prompt
    text_file("classes", '{"input": "fine", "output": "1"}\n{"input": "awful", "output": "0"}\n')
    text_file("empty_output", '{"input": "1 plus 1?", "output": " 2"}\n{"input": "nothing?", "output": ""}\n')
    text_file("toy", "".join(json.dumps({"input": f"{a} plus {b}?", "output": f" {a + b}"}) + "\n"
                             for a in range(3) for b in range(3)))
    paths["folder"] = root / "folder.jsonl"
    paths["folder"].mkdir()
    paths["fifo"] = root / "fifo.jsonl"
    os.mkfifo(paths["fifo"])
    paths["lora"] = root / "lora"
    paths["lora"].mkdir()
    (paths["lora"] / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    paths["ten"] = root / "ten"
    save_prompt(paths["ten"], np.random.default_rng(0).normal(0, 0.1, (10, 64)).astype(np.float32),
                GPT2Config(50257, 1024, 64, 2, 4), base_model_name_or_path="tiny-random")
    paths["root"] = root
    return paths


T = ["--model", "tiny-random"]
CASES = {  # name: (argv, a text the one error line must contain)
    # odd text
    "lone surrogate": (["generate", *T, "caf\udce9"], "not valid UTF-8"),
    "5001-digit int": (["eval", *T, "--data", "{bigint}"], "bigint.jsonl:1: unreadable JSON row"),
    "deeply nested row": (["eval", *T, "--data", "{nested}"], "nested.jsonl:1: unreadable JSON row"),
    "empty text": (["generate", *T, ""], "the text to continue is empty"),
    # odd numbers
    "seed -1": (["generate", *T, "--seed", "-1", "Hi"], "--seed -1"),
    "temperature nan": (["generate", *T, "--temperature", "nan", "Hi"], "--temperature nan"),
    "temperature inf": (["generate", *T, "--temperature", "inf", "Hi"], "--temperature inf"),
    "temperature < 0": (["generate", *T, "--temperature", "-1", "Hi"], "--temperature -1.0"),
    "top-k < 0": (["generate", *T, "--top-k", "-1", "Hi"], "--top-k -1"),
    "top-p 0": (["generate", *T, "--top-p", "0", "Hi"], "--top-p 0.0"),
    "max-new-tokens -1": (["generate", *T, "--max-new-tokens", "-1", "Hi"], "--max-new-tokens -1"),
    "repetition-penalty nan": (["generate", *T, "--repetition-penalty", "nan", "Hi"], "--repetition-penalty"),
    # hostile model files
    "n_layer 10**9": (["generate", "--model", "{n_layer_huge}", "Hi"], "n_layer must be an integer from 1 to"),
    "n_layer 1e9": (["generate", "--model", "{n_layer_float}", "Hi"], "got 1000000000.0"),
    "n_embd 2**40": (["generate", "--model", "{n_embd_huge}", "Hi"], "n_embd must be an integer from 1 to"),
    "epsilon null": (["generate", "--model", "{eps_null}", "Hi"], "layer_norm_epsilon must be a number"),
    "epsilon text": (["generate", "--model", "{eps_text}", "Hi"], "got 'tiny'"),
    "file too small for config": (["generate", "--model", "{more_layers}", "Hi"], "config.json describes"),
    "tokenizer without eos": (["generate", "--model", "{no_eos}", "Hi"], "no <|endoftext|> token"),
    "offsets past the end": (["generate", "--model", "{lying}", "Hi"], "truncated: 'wte.weight'"),
    # smaller
    "wrong-typed flag": (["tune", *T, "--data", "x", "--out", "y", "--lr", "x"],
                         "argument --lr: invalid float value: 'x'"),
    "unknown flag": (["eval", "--data", "x", "--bogus"], "unrecognized arguments: --bogus"),
    "prompt longer than the context": (["eval", *T, "--data", "{good}", "--hard-prompt", " a" * 1100],
                                       "a prompt of 1100 tokens leaves no room"),
    "soft prompt longer than the context": (["generate", *T, "--prompt", "{long_prompt}", "Hi"],
                                            "1100 virtual + 1 tokens) exceeds the model's context of n_positions=1024"),
    "tune: more virtual tokens than the context": (["tune", *T, "--data", "{good}", "--out", "{good}.run",
                                                    "--num-virtual-tokens", "5000"],
                                                   "--num-virtual-tokens: a prompt of 5000 tokens leaves no room"),
    "duplicate labels": (["eval", *T, "--data", "{good}", "--labels", " 2, 3, 2"], "appears twice"),
    "inspect a hub adapter offline": (["inspect", "{adapter}"], "'gpt2' is not a local folder: name it with --model"),
    # issue 23: what still broke
    "tune seed -1": (["tune", *T, "--data", "{good}", "--out", "{root}/seed", "--seed", "-1"],
                     "--seed -1: must be at least 0"),
    "a template's huge format spec": (["eval", *T, "--data", "{good}", "--template", "{{input:>100000000}}"],
                                      "'{input:>100000000}': write {input} without a format spec or conversion"),
    "a template's conversion": (["tune", *T, "--data", "{good}", "--out", "{root}/conv", "--template", "{{input!r}}"],
                                "without a format spec or conversion"),
    "two classes, one label word": (["eval", *T, "--data", "{classes}", "--label-words", "0= bad,1= bad"],
                                    "--label-words '0= bad,1= bad': rank classification needs two labels at least"),
    "one label": (["eval", *T, "--data", "{good}", "--labels", " 2"], "--labels ' 2': rank classification needs two"),
    "an empty label": (["eval", *T, "--data", "{good}", "--labels", " 2,"], "--labels ' 2,': a label is empty"),
    "one label word in tune": (["tune", *T, "--data", "{classes}", "--out", "{root}/one", "--val-split", "0.5",
                                "--label-words", "0= bad,1= bad"], "rank classification needs two labels at least"),
    "empty gold output": (["eval", *T, "--data", "{empty_output}"],
                          "empty_output.jsonl:2: empty output: exact match would count it as right"),
    "a label longer than the context": (["eval", *T, "--data", "{good}", "--labels", " 2," + " x" * 1100],
                                        "too long, only"),
    "a directory as data": (["eval", *T, "--data", "{folder}"], "folder.jsonl: a directory, not a data file"),
    "a FIFO as data": (["tune", *T, "--data", "{fifo}", "--out", "{root}/fifo"],
                       "fifo.jsonl: a FIFO or a device, not a data file"),
    "val-split 1.0": (["tune", *T, "--data", "{good}", "--out", "{root}/split", "--val-split", "1.0"],
                      "--val-split 1.0: must be between 0 and 1"),
    "limit 0": (["eval", *T, "--data", "{good}", "--limit", "0"], "--limit 0: must be at least 1"),
}


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """tinyprompt's and Hugging Face's caches in a temporary folder, and the hub closed."""
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYPROMPT_CACHE", str(root / "weights"))
        mp.setenv("HF_HUB_CACHE", str(root / "hf"))
        mp.setattr(constants, "HF_HUB_CACHE", str(root / "hf"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
        yield root


def one_error_line(code, err):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def main(argv):
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse's errors leave through sys.exit
        return e.code


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_is_one_error_line(name, files, offline, capsys):
    argv, mention = CASES[name]
    code = main([a.format(**files) for a in argv])
    out, err = capsys.readouterr()
    assert mention in one_error_line(code, err)
    assert not out


DEBRIS = {  # a tune that fails after --out was checked (and made): name -> (arguments, the error line mentions)
    "bad seed": (["--seed", "-1"], "--seed -1"),
    "diverging lr": (["--lr", "1e38", "--batch-size", "1"], "the updated prompt is not finite"),
    "a prompt that does not fit": (["--num-virtual-tokens", "5000"], "leaves no room for text"),
    "val-split 1.0": (["--val-split", "1.0"], "--val-split 1.0"),
    "a LoRA adapter to start from": (["--init-from", "{lora}"], "peft_type 'LORA', expected 'PROMPT_TUNING'"),
    "a FIFO as data": (["--data", "{fifo}"], "a FIFO or a device"),
}


@pytest.mark.parametrize("name", DEBRIS)
def test_a_failed_tune_leaves_no_folder_behind(name, files, offline, tmp_path, capsys):
    args, mention = DEBRIS[name]
    out = tmp_path / "runs" / "new" / "run"  # none of the three exists yet
    argv = ["tune", *T, "--data", "{toy}", "--out", str(out), "--num-virtual-tokens", "2", "--quiet", *args]
    code = main([a.format(**files) for a in argv])
    assert mention in one_error_line(code, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_tune_keeps_the_folders_that_were_there(files, offline, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    code = main(["tune", *T, "--data", str(files["toy"]), "--out", str(tmp_path / "runs" / "a" / "b"), "--quiet",
                 "--num-virtual-tokens", "5000"])
    one_error_line(code, capsys.readouterr().err)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["notes.txt"]


def test_a_reader_that_closes_the_pipe_ends_inspect_quietly(files, offline):
    """`inspect --k 1000 | head -3`: 10 lines of 1,000 tokens (~150 kB) do not fit a pipe (64 kB), so inspect
    is still writing when head exits: no BrokenPipeError traceback, exit status 141 (128 + SIGPIPE)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TINYPROMPT_CACHE": str(offline / "weights"),
           "HF_HUB_CACHE": str(offline / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    script = (f"{sys.executable} -m tinyprompt inspect {files['ten']} --model tiny-random --k 1000 | head -3; "
              "exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.stderr == "" and result.returncode == 141, result.stderr
    assert len(result.stdout.splitlines()) == 3 and result.stdout.startswith(str(files["ten"]))


def test_invalid_utf8_argument_from_the_os(offline, tmp_path):
    """The OS hands over bytes; Python decodes them with surrogateescape, so b'\\xe9' arrives as '\\udce9'."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TINYPROMPT_CACHE": str(offline / "weights"),
           "HF_HUB_CACHE": str(offline / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable.encode(), b"-m", b"tinyprompt", b"generate", b"--model",
                             b"tiny-random", b"caf\xe9"], env=env, capture_output=True, timeout=120, check=False)
    assert "not valid UTF-8" in one_error_line(result.returncode, result.stderr.decode())


# ---- tampered run checkpoints: `tune --resume` on a checkpoint.npz someone changed ----

def npz(arrays, **changes):
    """The bytes of an .npz holding `arrays` with `changes` applied (a None value removes that key)."""
    arrays = {k: v for k, v in {**arrays, **changes}.items() if v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


NAN = np.full((4, 64), np.nan, np.float32)
TAMPERED = {  # name: (how the good checkpoint's bytes are changed, a text the one error line must contain);
    # tiny-random (n_embd 64), P = 4, AdamW, one epoch of two steps
    "not an npz": (lambda good, arrays: b"hello", "corrupt checkpoint"),
    "empty file": (lambda good, arrays: b"", "corrupt checkpoint"),
    "cut in half": (lambda good, arrays: good[: len(good) // 2], "corrupt checkpoint"),
    "pickled object array": (lambda good, arrays: npz(arrays, prompt=np.array([{"x": 1}], dtype=object)),
                             "Object arrays cannot be loaded"),
    "missing prompt": (lambda good, arrays: npz(arrays, prompt=None), "missing prompt"),
    "missing config": (lambda good, arrays: npz(arrays, config=None), "config"),
    "missing data_hash": (lambda good, arrays: npz(arrays, data_hash=None), "missing data_hash"),
    "missing loss history": (lambda good, arrays: npz(arrays, epoch_losses=None), "missing epoch_losses"),
    "missing optimizer state": (lambda good, arrays: npz(arrays, **{"optim.exp_avg": None}), "lacks 'exp_avg'"),
    "prompt too narrow": (lambda good, arrays: npz(arrays, prompt=np.zeros((4, 7), np.float32)), "[4, 7]"),
    "prompt 1-D": (lambda good, arrays: npz(arrays, prompt=np.zeros(64, np.float32)), "[64]"),
    "prompt empty": (lambda good, arrays: npz(arrays, prompt=np.zeros((0, 64), np.float32)), "[0, 64]"),
    "prompt float64": (lambda good, arrays: npz(arrays, prompt=np.zeros((4, 64))), "prompt is float64"),
    "prompt of ints": (lambda good, arrays: npz(arrays, prompt=np.zeros((4, 64), np.int32)), "prompt is int32"),
    "prompt NaN": (lambda good, arrays: npz(arrays, prompt=NAN), "the prompt holds NaN or inf"),
    "prompt inf": (lambda good, arrays: npz(arrays, prompt=np.full((4, 64), np.inf, np.float32)), "NaN or inf"),
    "optimizer state NaN": (lambda good, arrays: npz(arrays, **{"optim.exp_avg_sq": NAN}), "exp_avg_sq"),
    "optimizer state of other rows": (lambda good, arrays: npz(arrays, **{"optim.exp_avg": np.zeros((3, 64),
                                                                                                  np.float32)}),
                                      "float32 [3, 64]"),
    "optimizer state 1-D": (lambda good, arrays: npz(arrays, **{"optim.exp_avg": np.zeros(7, np.float32)}),
                            "float32 [7]"),
    "optimizer state text": (lambda good, arrays: npz(arrays, **{"optim.exp_avg": np.array("x")}), "<U1 []"),
    "optimizer step negative": (lambda good, arrays: npz(arrays, **{"optim.step": np.array(-3)}), "step is"),
    "epoch absurd": (lambda good, arrays: npz(arrays, epoch=np.array(10**12)), "epoch is"),
    "epoch a float": (lambda good, arrays: npz(arrays, epoch=np.array(1.0)), "epoch is"),
    "epoch text": (lambda good, arrays: npz(arrays, epoch=np.array("1")), "epoch is"),
    "step negative": (lambda good, arrays: npz(arrays, step=np.array(-5)), "step is"),
    "history longer than the epochs": (lambda good, arrays: npz(arrays, epoch=np.array(2)),
                                       "the loss history does not match the epoch"),
    "history NaN": (lambda good, arrays: npz(arrays, epoch_losses=np.array([np.nan])), "epoch_losses"),
    "history 2-D": (lambda good, arrays: npz(arrays, step_losses=np.zeros((2, 2))), "step_losses"),
    "config not JSON": (lambda good, arrays: npz(arrays, config=np.array("{not json")), "corrupt checkpoint"),
    "config a list": (lambda good, arrays: npz(arrays, config=np.array("[1, 2]")), "config is not a JSON object"),
}



@pytest.fixture(scope="module")
def run(files, offline, tmp_path_factory):
    """A one-epoch run of tune (the argv to resume it, and its checkpoint's bytes and arrays)."""
    out = tmp_path_factory.mktemp("run") / "run"
    argv = ["tune", *T, "--data", str(files["good"]), "--out", str(out), "--num-virtual-tokens", "4",
            "--batch-size", "1", "--quiet"]
    assert main([*argv, "--epochs", "1"]) in (0, None)
    good = (out / "checkpoint.npz").read_bytes()
    with np.load(out / "checkpoint.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return out, [*argv, "--epochs", "2", "--resume"], good, arrays


@pytest.mark.parametrize("name", TAMPERED)
def test_a_tampered_checkpoint_is_one_error_line(name, run, capsys):
    out, resume, good, arrays = run
    change, mention = TAMPERED[name]
    (out / "checkpoint.npz").write_bytes(change(good, arrays))
    try:
        code = main(resume)
        _, err = capsys.readouterr()
        line = one_error_line(code, err)
        assert str(out / "checkpoint.npz") in line and mention in line, line
    finally:
        (out / "checkpoint.npz").write_bytes(good)
