"""The Python API (`import tinyprompt as tp`): the README's example runs, and each function does what it says."""

import re
from pathlib import Path

import numpy as np
import pytest
from test_hub import warm_cache

import tinyprompt as tp
from tinyprompt.generate import generate as generate_ids
from tinyprompt.hub import find_weights

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("no_network")
ROWS = [{"input": f"{a} + {b} =", "output": f" {a + b}"} for a in range(3) for b in range(3)]


@pytest.fixture(scope="module")
def model():
    return tp.load_model("tiny-random")


def readme_example() -> str:
    """The python code block of README.md's "Python API" section."""
    section = (REPO / "README.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    """On tiny-random (the same calls as on tiny-pretrained, in seconds), from a folder that has the repo's data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(REPO / "data")
    code = readme_example().replace('"tiny-pretrained"', '"tiny-random"')
    namespace = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)  # noqa: S102 (our own README)
    before, after, prompt = namespace["before"], namespace["after"], namespace["prompt"]
    assert prompt.shape == (8, 64) and prompt.dtype == np.float32
    assert after["loss"] < before["loss"]  # 80 of the 100 sums are the training rows: their loss must fall
    assert re.fullmatch(r"loss \d+\.\d{3} -> \d+\.\d{3}, exact match \d\.\d\d\n"
                        r"best validation epoch [0-2]: its prompt is in runs/api/best\n2 \+ 3 =.*\n",
                        capsys.readouterr().out)
    metrics = namespace["metrics"]
    assert metrics["config"]["data"] == "(a list of 100 rows)" and metrics["data"]["val_rows"] == 20
    assert len(tp.load_prompt(tmp_path / "runs" / "api" / "best")[0]) == 8
    assert np.array_equal(tp.load_prompt(tmp_path / "runs" / "api-copy")[0], prompt)


def test_everything_exported_is_there_and_documented():
    for name in tp.__all__:
        assert getattr(tp, name).__doc__, f"tp.{name} has no docstring"
    assert {"load_model", "load_tokenizer", "TrainConfig", "train", "generate", "evaluate", "load_prompt",
            "save_prompt"} <= set(tp.__all__)


def test_generate_is_text_in_text_out(model):
    tok = tp.load_tokenizer("tiny-random")
    prompt = np.random.default_rng(0).normal(0, 0.1, (4, 64)).astype(np.float32)
    ids = generate_ids(model, tok.encode("Hello"), prompt, max_new_tokens=5, eos_id=tok.eos_id)
    assert tp.generate(model, tok, "Hello", prompt, max_new_tokens=5) == tok.decode(ids)
    assert tp.generate(model, tok, "Hello", max_new_tokens=3, temperature=1.0, seed=1) == tok.decode(
        generate_ids(model, tok.encode("Hello"), None, max_new_tokens=3, temperature=1.0, seed=1))


def test_evaluate_takes_a_file_or_rows(model, tmp_path):
    tok = tp.load_tokenizer()
    file = tmp_path / "rows.jsonl"
    file.write_text("".join(f'{{"input": "{r["input"]}", "output": "{r["output"]}"}}\n' for r in ROWS))
    labels = sorted({r["output"] for r in ROWS})
    assert tp.evaluate(model, tok, ROWS, labels=labels) == tp.evaluate(model, tok, str(file), labels=labels)
    result = tp.evaluate(model, tok, [{"text": "one two three"}])
    assert result["loss"] > 0 and result["exact_match"] is None and result["accuracy"] is None
    with pytest.raises(tp.TinyPromptError, match="list of dicts"):
        tp.evaluate(model, tok, [])


def test_load_tokenizer_uses_a_cached_models_file_and_never_downloads(tmp_path, monkeypatch):
    assert tp.load_tokenizer("gpt2").encode("Hello world") == [15496, 995]  # cold cache, offline: bundled
    folder = find_weights("tiny-random")
    (tmp_path / "model").mkdir()
    for file in ("config.json", "model.safetensors"):
        (tmp_path / "model" / file).symlink_to(folder / file)
    (tmp_path / "model" / "tokenizer.json").write_text("{not json")  # proves it is the file that is read
    warm_cache(tmp_path / "hf", "openai-community/gpt2", tmp_path / "model")
    with pytest.raises(tp.TinyPromptError, match="tokenizer.json"):
        tp.load_tokenizer("gpt2")


def test_api_is_the_face_that_nothing_inside_the_package_imports():
    """api.py sits above every module: the training loop, the CLI and the rest use the layers below it, so the
    public wrapper checks arguments once, on its way in. Only __init__ re-exports it, and demo.py, a program
    written with the public API like the lessons, uses it."""
    import ast

    users = set()
    for path in sorted((REPO / "tinyprompt").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                    (node.level == 1 and (node.module == "api" or node.module is None and any(
                        alias.name == "api" for alias in node.names)))
                    or node.module == "tinyprompt.api"
                    or node.module == "tinyprompt" and any(alias.name == "api" for alias in node.names)):
                users.add(path.name)
    assert users <= {"__init__.py", "demo.py"}, users
    assert "__init__.py" in users  # the scan really sees an import of api
