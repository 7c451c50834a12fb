"""Hostile arguments to the Python API, as tests/test_hostile.py throws them at the command line.

Every call in the tables must raise one TinyPromptError -- an InvalidType (also a TypeError) for a wrong type,
an InvalidValue (also a ValueError) for a wrong value, or a plain TinyPromptError for a problem with a file or
the data -- whose one-line message names the argument and the value; never a raw error from deep inside (numpy,
pathlib), never a result that means nothing, and never a file or folder left behind.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import TOY_ROWS

import tinyprompt as tp
from tinyprompt.errors import InvalidType, InvalidValue, TinyPromptError

pytestmark = pytest.mark.usefixtures("no_network")
NAN = np.full((2, 64), np.nan, np.float32)
GOOD = np.zeros((2, 64), np.float32)


@dataclass
class Setting:
    model: tp.GPT2
    tok: object
    tmp: Path  # the test's folder: must still be empty after the call, but for what `files` put there
    files: dict


@pytest.fixture
def setting(model, tok, tmp_path):
    files = {"folder": tmp_path / "folder.jsonl", "fifo": tmp_path / "fifo.jsonl", "toy": tmp_path / "toy.jsonl",
             "adapter": tmp_path / "adapter"}
    files["folder"].mkdir()
    os.mkfifo(files["fifo"])
    files["toy"].write_text("".join(json.dumps(row) + "\n" for row in TOY_ROWS))
    tp.save_prompt(files["adapter"], GOOD, model.config, "tiny-random")
    return Setting(model, tok, tmp_path, files)


def config(s, **changes):
    """A run that would work, with `changes`; its out is a folder (and a parent) that does not exist yet."""
    return tp.TrainConfig(**{"model": "tiny-random", "data": TOY_ROWS, "out": str(s.tmp / "runs" / "run"),
                             "num_virtual_tokens": 2, "epochs": 1, "quiet": True, **changes})


def train(s, **changes):
    return tp.train(config(s, **changes), s.model, s.tok)


def generate(s, text="Hello", prompt=None, **options):
    return tp.generate(s.model, s.tok, text, prompt, **options)


def evaluate(s, data=TOY_ROWS, **options):
    return tp.evaluate(s.model, s.tok, data, **options)


CASES = {  # name: (the call, the error type, what its one line must say)
    # load_model, load_tokenizer
    "load_model(None)": (lambda s: tp.load_model(None), InvalidType, "name_or_path None: must be a path"),
    "load_model(3)": (lambda s: tp.load_model(3), InvalidType, "name_or_path 3: must be a path"),
    "load_model('')": (lambda s: tp.load_model(""), InvalidValue, "name_or_path '': must be a non-empty path"),
    "load_model dtype text": (lambda s: tp.load_model("tiny-random", dtype="float32"), InvalidType,
                              "dtype 'float32': must be np.float16, np.float32 or np.float64"),
    "load_model dtype int": (lambda s: tp.load_model("tiny-random", dtype=np.int32), InvalidType, "dtype"),
    "load_tokenizer(3)": (lambda s: tp.load_tokenizer(3), InvalidType, "name_or_path 3: must be a path"),
    # TrainConfig and train
    "epochs '2'": (lambda s: train(s, epochs="2"), InvalidType, "--epochs '2': must be an integer, got str"),
    "epochs 1.5": (lambda s: train(s, epochs=1.5), InvalidType, "--epochs 1.5: must be an integer, got float"),
    "epochs True": (lambda s: train(s, epochs=True), InvalidType, "--epochs True: must be an integer, got bool"),
    "epochs 0": (lambda s: train(s, epochs=0), InvalidValue, "--epochs 0: must be at least 1"),
    "epochs 10**9": (lambda s: train(s, epochs=10**9), InvalidValue, "--epochs 1000000000: must be at most"),
    "lr '0.1'": (lambda s: train(s, lr="0.1"), InvalidType, "--lr '0.1': must be a number, got str"),
    "lr nan": (lambda s: train(s, lr=float("nan")), InvalidValue, "--lr nan: must be a positive number"),
    "num_virtual_tokens 2.0": (lambda s: train(s, num_virtual_tokens=2.0), InvalidType,
                               "--num-virtual-tokens 2.0: must be an integer, got float"),
    "val_split '0.5'": (lambda s: train(s, val_split="0.5"), InvalidType, "--val-split '0.5': must be a number"),
    "val_split 1.0": (lambda s: train(s, val_split=1.0), InvalidValue, "--val-split 1.0: must be between 0 and 1"),
    "data a dict": (lambda s: train(s, data={"input": "a", "output": "b"}), InvalidType,
                    "--data {'input': 'a', 'output': 'b'}: must be a data file's path or a list of row dicts, got dict"),
    "data None": (lambda s: train(s, data=None), InvalidType, "--data None: must be a data file's path"),
    "val_data 3": (lambda s: train(s, val_data=3), InvalidType, "--val-data 3: must be a data file's path"),
    "seed -1": (lambda s: train(s, seed=-1), InvalidValue, "--seed -1: must be at least 0"),
    "seed 0.5": (lambda s: train(s, seed=0.5), InvalidType, "--seed 0.5: must be an integer"),
    "out None": (lambda s: train(s, out=None), InvalidType, "--out None: must be a path"),
    "batch_size '8'": (lambda s: train(s, batch_size="8"), InvalidType, "--batch-size '8': must be an integer"),
    "weight_decay inf": (lambda s: train(s, weight_decay=float("inf")), InvalidValue, "--weight-decay inf"),
    "max_grad_norm 0": (lambda s: train(s, max_grad_norm=0), InvalidValue, "--max-grad-norm 0.0: must be > 0"),
    "optimizer 'adam'": (lambda s: train(s, optimizer="adam"), InvalidValue, "--optimizer 'adam': choose adamw"),
    "optimizer None": (lambda s: train(s, optimizer=None), InvalidType, "--optimizer None: must be a string"),
    "shuffle 'yes'": (lambda s: train(s, shuffle="yes"), InvalidType, "--shuffle 'yes': must be True or False"),
    "labels a list": (lambda s: train(s, labels=[" 1", " 2"], val_split=0.3), InvalidType,
                      "--labels [' 1', ' 2']: must be a string, got list"),
    "template a format spec": (lambda s: train(s, template="{input:>100000000}"), TinyPromptError,
                               "--template '{input:>100000000}': write {input} without a format spec"),
    "label words to one word": (lambda s: train(s, data=[{"input": "a", "output": "0"}, {"input": "b", "output": "1"}],
                                                val_split=0.5, label_words="0= bad,1= bad"), InvalidValue,
                                "--label-words '0= bad,1= bad': rank classification needs two labels at least"),
    "an empty label": (lambda s: train(s, val_split=0.3, labels=" 1,"), InvalidValue, "--labels ' 1,': a label is empty"),
    "config a dict": (lambda s: tp.train({"data": "x"}, s.model, s.tok), InvalidType,
                      "config {'data': 'x'}: must be a TrainConfig"),
    "model a name": (lambda s: tp.train(config(s), "tiny-random", s.tok), InvalidType,
                     "model 'tiny-random': must be a GPT2 (tp.load_model"),
    "tokenizer 3": (lambda s: tp.train(config(s), s.model, 3), InvalidType, "tokenizer 3: must be a Tokenizer"),
    "on_epoch_end 3": (lambda s: tp.train(config(s), s.model, s.tok, 3), InvalidType,
                       "on_epoch_end 3: must be a function or None"),
    "a FIFO as data": (lambda s: train(s, data=s.files["fifo"]), TinyPromptError,
                       "fifo.jsonl: a FIFO or a device, not a data file"),
    "a directory as data": (lambda s: train(s, data=str(s.files["folder"])), TinyPromptError,
                            "folder.jsonl: a directory, not a data file"),
    "a validation row with an empty output": (lambda s: train(s, val_data=[{"input": "a", "output": ""}]),
                                              TinyPromptError, "val_data:1: empty output"),
    "a diverging lr": (lambda s: train(s, lr=1e38, batch_size=1), TinyPromptError, "the updated prompt is not finite"),
    # generate
    "generate: model a name": (lambda s: tp.generate("tiny-random", s.tok, "Hi"), InvalidType,
                               "model 'tiny-random': must be a GPT2"),
    "generate: tokenizer None": (lambda s: tp.generate(s.model, None, "Hi"), InvalidType, "tokenizer None"),
    "generate: empty text, no prompt": (lambda s: generate(s, ""), InvalidValue, "the text to continue is empty"),
    "generate: text None": (lambda s: generate(s, None), InvalidType, "text None: must be a string"),
    "generate: text bytes": (lambda s: generate(s, b"Hi"), InvalidType, "text b'Hi': must be a string, got bytes"),
    "generate: prompt a list": (lambda s: generate(s, prompt=GOOD.tolist()), InvalidType,
                                "prompt [[0.0, 0.0, 0.0"),
    "generate: prompt NaN": (lambda s: generate(s, prompt=NAN), InvalidValue, "prompt [2, 64] holds NaN or inf"),
    "generate: prompt of ints": (lambda s: generate(s, prompt=np.zeros((2, 64), np.int64)), InvalidType,
                                 "prompt int64 [2, 64]: must be a float array"),
    "generate: prompt 1-D": (lambda s: generate(s, prompt=np.zeros(64, np.float32)), InvalidValue,
                             "prompt shape (64,) does not match the model's n_embd 64: must be [P, 64]"),
    "generate: prompt too narrow": (lambda s: generate(s, prompt=np.zeros((2, 8), np.float32)), InvalidValue,
                                    "prompt shape (2, 8) does not match"),
    "generate: prompt empty": (lambda s: generate(s, prompt=np.zeros((0, 64), np.float32)), InvalidValue,
                               "prompt shape (0, 64)"),
    "generate: max_new_tokens '3'": (lambda s: generate(s, max_new_tokens="3"), InvalidType,
                                     "max_new_tokens '3': must be an integer, got str"),
    "generate: max_new_tokens 2.5": (lambda s: generate(s, max_new_tokens=2.5), InvalidType, "max_new_tokens 2.5"),
    "generate: max_new_tokens -1": (lambda s: generate(s, max_new_tokens=-1), InvalidValue,
                                    "max_new_tokens -1: must be at least 0"),
    "generate: max_new_tokens past the context": (lambda s: generate(s, max_new_tokens=10**6), TinyPromptError,
                                                  "max_new_tokens=1000000 does not fit"),
    "generate: temperature 'hot'": (lambda s: generate(s, temperature="hot"), InvalidType, "temperature 'hot'"),
    "generate: temperature nan": (lambda s: generate(s, temperature=float("nan")), InvalidValue, "temperature nan"),
    "generate: top_p 0": (lambda s: generate(s, top_p=0), InvalidValue, "top_p 0.0: must be in (0, 1]"),
    "generate: top_k -1": (lambda s: generate(s, top_k=-1), InvalidValue, "top_k -1: must be at least 0"),
    "generate: repetition_penalty 0": (lambda s: generate(s, repetition_penalty=0), InvalidValue,
                                       "repetition_penalty 0.0"),
    "generate: seed -1": (lambda s: generate(s, seed=-1), InvalidValue, "seed -1: must be at least 0"),
    # evaluate
    "evaluate: data None": (lambda s: evaluate(s, None), InvalidType, "data None: must be a data file's path"),
    "evaluate: data a dict": (lambda s: evaluate(s, TOY_ROWS[0]), InvalidType, "got dict"),
    "evaluate: data 42": (lambda s: evaluate(s, 42), InvalidType, "data 42: must be a data file's path"),
    "evaluate: a directory": (lambda s: evaluate(s, s.files["folder"]), TinyPromptError, "a directory, not a data"),
    "evaluate: a FIFO": (lambda s: evaluate(s, s.files["fifo"]), TinyPromptError, "a FIFO or a device"),
    "evaluate: empty outputs": (lambda s: evaluate(s, [{"input": "a", "output": ""}]), TinyPromptError,
                                "data:1: empty output: exact match would count it as right"),
    "evaluate: one label": (lambda s: evaluate(s, labels=[" 1"]), InvalidValue,
                            "labels [' 1']: rank classification needs two labels at least"),
    "evaluate: an empty label": (lambda s: evaluate(s, labels=[" 1", ""]), InvalidValue, "a label is empty"),
    "evaluate: a label twice": (lambda s: evaluate(s, labels=[" 1", " 1"]), InvalidValue, "appears twice"),
    "evaluate: labels a str": (lambda s: evaluate(s, labels=" 1, 2"), InvalidType,
                               "labels ' 1, 2': must be a list of label strings, got str"),
    "evaluate: a label a number": (lambda s: evaluate(s, labels=[" 1", 2]), InvalidType,
                                   "every label must be a string"),
    "evaluate: a label past the context": (lambda s: evaluate(s, labels=[" 0", " 1", " 2", " 3", " 4", " x" * 2000]),
                                           TinyPromptError, "too long, only"),
    "evaluate: labels on text rows": (lambda s: evaluate(s, [{"text": "a b"}], labels=[" a", " b"]), TinyPromptError,
                                      "labels need input/output rows"),
    "evaluate: batch_size 0": (lambda s: evaluate(s, batch_size=0), InvalidValue, "batch_size 0: must be at least 1"),
    "evaluate: batch_size '8'": (lambda s: evaluate(s, batch_size="8"), InvalidType, "batch_size '8'"),
    "evaluate: template None": (lambda s: evaluate(s, template=None), InvalidType, "template None: must be a string"),
    "evaluate: template a format spec": (lambda s: evaluate(s, template="{input:>100000000}"), TinyPromptError,
                                         "without a format spec or conversion"),
    "evaluate: prompt NaN": (lambda s: evaluate(s, prompt=NAN), InvalidValue, "prompt [2, 64] holds NaN or inf"),
    "evaluate: prompt a list": (lambda s: evaluate(s, prompt=[[0.0] * 64]), InvalidType, "must be a NumPy array"),
    # load_prompt, save_prompt
    "load_prompt(None)": (lambda s: tp.load_prompt(None), InvalidType, "directory None: must be a path"),
    "load_prompt(3)": (lambda s: tp.load_prompt(3), InvalidType, "directory 3: must be a path"),
    "load_prompt n_embd '64'": (lambda s: tp.load_prompt(s.files["adapter"], n_embd="64"), InvalidType,
                                "n_embd '64': must be an integer"),
    "load_prompt a data file": (lambda s: tp.load_prompt(s.files["toy"]), TinyPromptError,
                                "toy.jsonl: no such adapter directory"),
    "save_prompt NaN": (lambda s: tp.save_prompt(s.tmp / "new", NAN, s.model.config), InvalidValue,
                        "prompt [2, 64] holds NaN or inf"),
    "save_prompt past float32": (lambda s: tp.save_prompt(s.tmp / "new", np.full((2, 64), 1e39), s.model.config),
                                 InvalidValue, "prompt [2, 64]: a value overflows float32"),
    "save_prompt a list": (lambda s: tp.save_prompt(s.tmp / "new", GOOD.tolist(), s.model.config), InvalidType,
                           "must be a NumPy array [P, C]"),
    "save_prompt another width": (lambda s: tp.save_prompt(s.tmp / "new", np.zeros((2, 8)), s.model.config),
                                  InvalidValue, "does not match the model's n_embd 64"),
    "save_prompt directory None": (lambda s: tp.save_prompt(None, GOOD, s.model.config), InvalidType,
                                   "directory None: must be a path"),
    "save_prompt config None": (lambda s: tp.save_prompt(s.tmp / "new", GOOD, None), InvalidType,
                                "config.n_embd None: must be an integer"),
    "save_prompt init 'bogus'": (lambda s: tp.save_prompt(s.tmp / "new", GOOD, s.model.config, init="bogus"),
                                 InvalidValue, "init 'bogus': choose random, vocab, text, labels"),
    "save_prompt base model 3": (lambda s: tp.save_prompt(s.tmp / "new", GOOD, s.model.config, 3), InvalidType,
                                 "base_model_name_or_path 3: must be a string"),
}


@pytest.mark.parametrize("name", CASES)
def test_a_hostile_argument_is_one_error_naming_it(name, setting):
    call, error, mention = CASES[name]
    before = sorted(setting.tmp.iterdir())
    with pytest.raises(error) as e:
        call(setting)
    message = str(e.value)
    assert isinstance(e.value, TinyPromptError) and "\n" not in message and mention in message, message
    assert sorted(setting.tmp.iterdir()) == before  # nothing written, no folder made


def test_wrong_types_are_type_errors_and_wrong_values_value_errors():
    """A caller that catches Python's own TypeError / ValueError catches ours too."""
    assert issubclass(InvalidType, TypeError) and issubclass(InvalidValue, ValueError)
    assert issubclass(InvalidType, TinyPromptError) and issubclass(InvalidValue, TinyPromptError)
    assert tp.InvalidType is InvalidType and tp.InvalidValue is InvalidValue


def test_plain_forms_of_good_arguments_are_accepted(setting, capsys):
    """NumPy numbers and pathlib paths are good arguments: they arrive in metrics.json as plain numbers and text."""
    prompt, metrics = tp.train(config(setting, out=setting.tmp / "run", epochs=np.int64(1), lr=np.float32(0.1),
                                      seed=np.uint8(3), data=setting.files["toy"]), setting.model, setting.tok)
    assert metrics["config"]["epochs"] == 1 and metrics["config"]["out"] == str(setting.tmp / "run")
    assert metrics["config"]["data"] == str(setting.files["toy"])
    assert tp.load_prompt(setting.tmp / "run", n_embd=np.int64(64))[0].shape == prompt.shape
    text = generate(setting, "", prompt, max_new_tokens=np.int64(2))  # an empty text after a prompt is fine
    assert isinstance(text, str)
    result = evaluate(setting, setting.files["toy"], prompt=prompt, labels=(" 0", " 1", " 2", " 3", " 4"))
    assert 0 <= result["accuracy"] <= 1 and result["exact_match"] is not None
    tp.save_prompt(setting.tmp / "f64", prompt.astype(np.float64), setting.model.config)  # widened, then narrowed
    np.testing.assert_array_equal(tp.load_prompt(setting.tmp / "f64")[0], prompt)
