"""`tinyprompt tune | eval | inspect` as a user meets them: fresh processes, exit status, output, files.

Every bad input of issue 4 item 9 must end in exit status 2, one line `error: ...` and no traceback, and must
leave every existing file as it was (bytes and modification time), even with --overwrite. No network:
the hub is switched off and tiny-random lives in weights/ (written once).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyprompt.hub import TINY_RANDOM

REPO = Path(__file__).resolve().parent.parent
PEFT_PROMPT = REPO / "tests" / "fixtures" / "peft-prompt"  # saved by PEFT for a model with n_embd 32
ROWS = [{"input": f"Q: {a} plus {b}?\nA:", "output": f" {a + b}"} for a in range(3) for b in range(3)]
TUNE = ["tune", "--model", "tiny-random", "--num-virtual-tokens", "4", "--batch-size", "3", "--lr", "0.1", "--quiet"]


def run(cwd, *args):
    # one BLAS thread: these matmuls are tiny, and threads fighting other processes for 2 cores cost 10-50x
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tinyprompt.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def assert_one_error_line(result, mention):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert mention in lines[0], lines[0]


def snapshot(directory):
    """Every file below `directory` (best/ too), with its bytes and modification time."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A folder with the data files, the bad inputs, and one finished run (`run/`, 2 epochs)."""
    home = tmp_path_factory.mktemp("tune")
    (home / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (home / "bad.jsonl").write_text(json.dumps(ROWS[0]) + "\n{bad\n")
    (home / "empty.jsonl").write_text("")
    (home / "nokeys.jsonl").write_text(json.dumps({"question": "a", "answer": "b"}) + "\n")
    (home / "nooutput.jsonl").write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"input": "x"}) + "\n")
    (home / "long.jsonl").write_text(json.dumps({"text": " a" * 1100}) + "\n")
    (home / "text.jsonl").write_text(json.dumps({"text": "a text row"}) + "\n")
    (home / "sst.tsv").write_text("text\tlabel\ngood fun\t1\ndull\t0\nso so\t2\n")
    corrupt = home / "corrupt-model"
    corrupt.mkdir()
    (corrupt / "config.json").write_text(json.dumps(TINY_RANDOM.to_hf_dict()))
    (corrupt / "model.safetensors").write_bytes(bytes(range(100)))
    adapter = home / "corrupt-adapter"
    adapter.mkdir()
    shutil.copy(PEFT_PROMPT / "adapter_config.json", adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    result = run(home, *TUNE, "--data", "toy.jsonl", "--out", "run", "--epochs", "2", "--val-split", "0.3")
    assert result.returncode == 0, result.stderr
    return home


def test_tune_writes_a_run(home):
    metrics = json.loads((home / "run" / "metrics.json").read_text())
    assert len(metrics["step_losses"]) == 2 * 2 and len(metrics["val_losses"]) == 2
    assert metrics["config"]["num_virtual_tokens"] == 4 and metrics["data"]["val_rows"] == 3
    assert (home / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (home / "run").iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "best", "checkpoint.npz", "loss.png",
        "metrics.json"]
    assert sorted(p.name for p in (home / "run" / "best").iterdir()) == ["adapter_config.json",
                                                                         "adapter_model.safetensors"]


def test_tune_prints_one_line_per_epoch(home, tmp_path):
    result = run(home, *[a for a in TUNE if a != "--quiet"], "--data", "toy.jsonl", "--val-data", "toy.jsonl",
                 "--epochs", "2", "--out", str(tmp_path / "loud"))
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 3 and re.fullmatch(r"epoch 0/2  val loss \d+\.\d{4}  val exact match 0\.000", epochs[0])
    assert "train loss" in epochs[1] and "val exact match" in epochs[1] and epochs[1].endswith("s")
    assert re.search(r"loss.png; best/: epoch [012]$", result.stdout)
    assert not result.stderr  # not a terminal: no progress bar


def test_help_names_every_flag(home):
    result = run(home, "tune", "--help")
    flags = ["--val-data", "--val-split", "--num-virtual-tokens", "--init", "--init-text", "--init-from", "--lr",
             "--epochs", "--batch-size", "--accumulation-steps", "--optimizer", "--weight-decay", "--lr-schedule",
             "--warmup-steps", "--max-grad-norm", "--seed", "--no-shuffle", "--template", "--truncate",
             "--input-column", "--output-column", "--text-column", "--label-words", "--overwrite", "--resume",
             "--labels", "--early-stopping"]
    assert result.returncode == 0 and all(flag in result.stdout for flag in flags)
    assert "no validation, no best/" in " ".join(result.stdout.split())
    assert "default: adamw 0.03" in result.stdout and "default: 20" in result.stdout
    for command in ("eval", "inspect"):
        assert run(home, command, "--help").returncode == 0


BAD_TUNE = {  # name: (arguments after `tune ... --out run --overwrite`, what the one error line must mention)
    "malformed JSONL": (["--data", "bad.jsonl"], "bad.jsonl:2: malformed JSON"),
    "empty data": (["--data", "empty.jsonl"], "empty.jsonl: no rows"),
    "missing keys": (["--data", "nokeys.jsonl"], "no 'input'/'output' or 'text' field"),
    "missing key in a row": (["--data", "nooutput.jsonl"], "nooutput.jsonl:2: missing 'output'"),
    "missing data file": (["--data", "no-such.jsonl"], "no-such.jsonl: no such data file"),
    "missing validation file": (["--data", "toy.jsonl", "--val-data", "nope.jsonl"], "nope.jsonl: no such data"),
    "corrupt weights": (["--data", "toy.jsonl", "--model", "corrupt-model"], "model.safetensors"),
    "corrupt adapter": (["--data", "toy.jsonl", "--init-from", "corrupt-adapter"], "corrupt"),
    "missing adapter": (["--data", "toy.jsonl", "--init-from", "no-adapter"], "no such adapter directory"),
    "token_dim mismatch": (["--data", "toy.jsonl", "--init-from", str(PEFT_PROMPT)],
                           "token_dim 32 but the model has n_embd 64"),
    "zero lr": (["--data", "toy.jsonl", "--lr", "0"], "--lr 0.0: must be a positive number"),
    "negative lr": (["--data", "toy.jsonl", "--lr", "-1"], "--lr -1.0: must be a positive number"),
    "nan lr": (["--data", "toy.jsonl", "--lr", "nan"], "--lr nan: must be a positive number"),
    "no virtual tokens": (["--data", "toy.jsonl", "--num-virtual-tokens", "0"], "--num-virtual-tokens 0: must be"),
    "zero epochs": (["--data", "toy.jsonl", "--epochs", "0"], "--epochs 0: must be at least 1"),
    "zero batch": (["--data", "toy.jsonl", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    "val data and split": (["--data", "toy.jsonl", "--val-data", "toy.jsonl", "--val-split", "0.2"], "not both"),
    "bad val split": (["--data", "toy.jsonl", "--val-split", "1.5"], "--val-split 1.5"),
    "text init without text": (["--data", "toy.jsonl", "--init", "text"], "needs a non-empty --init-text"),
    "labels init on text rows": (["--data", "long.jsonl", "--init", "labels", "--truncate"], "needs data with outputs"),
    "row too long": (["--data", "long.jsonl"], "1100 tokens, but only 1020 fit"),
    "bad template": (["--data", "toy.jsonl", "--template", "{question}"], "only {input} may appear"),
    "label word missing": (["--data", "sst.tsv", "--input-column", "text", "--output-column", "label",
                            "--label-words", "0= negative,1= positive"], "sst.tsv:4: output '2' is not in --label-words"),
    "label words malformed": (["--data", "toy.jsonl", "--label-words", "positive"], "write it as 'VALUE=WORD"),
    "overwrite and resume": (["--data", "toy.jsonl", "--resume"], "--overwrite or --resume, not both"),
    "early stopping without validation": (["--data", "toy.jsonl", "--early-stopping", "2"],
                                          "--early-stopping needs validation data: give --val-data or --val-split"),
    "zero early stopping": (["--data", "toy.jsonl", "--val-split", "0.3", "--early-stopping", "0"],
                            "--early-stopping 0: must be at least 1"),
}


@pytest.mark.parametrize("name", BAD_TUNE)
def test_bad_tune_input_fails_cleanly_and_loses_nothing(home, name):
    args, mention = BAD_TUNE[name]
    before = snapshot(home / "run")
    assert_one_error_line(run(home, *TUNE, "--out", "run", "--overwrite", *args), mention)
    assert snapshot(home / "run") == before


def test_an_existing_run_is_refused_without_overwrite_or_resume(home, tmp_path):
    before = snapshot(home / "run")
    assert_one_error_line(run(home, *TUNE, "--data", "toy.jsonl", "--out", "run"), "already holds a run")
    assert snapshot(home / "run") == before
    result = run(home, *TUNE, "--data", "toy.jsonl", "--out", str(tmp_path), "--resume")
    assert_one_error_line(result, "has no checkpoint.npz to continue from")
    (tmp_path / "file").write_text("x")
    assert_one_error_line(run(home, *TUNE, "--data", "toy.jsonl", "--out", str(tmp_path / "file")), "not a directory")


def test_resume_refuses_a_corrupt_checkpoint_or_other_settings(home, tmp_path):
    shutil.copytree(home / "run", tmp_path / "run")
    args = [*TUNE, "--data", "toy.jsonl", "--out", str(tmp_path / "run"), "--epochs", "3", "--val-split", "0.3",
            "--resume"]
    assert_one_error_line(run(home, *args, "--seed", "5"), "--resume: seed is 5 but the run")
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a zip")
    before = snapshot(tmp_path / "run")
    assert_one_error_line(run(home, *args), "checkpoint.npz: corrupt checkpoint")
    assert snapshot(tmp_path / "run") == before


def test_a_diverging_run_stops_and_keeps_the_last_good_prompt(home, tmp_path):
    # warmup: lr 0 at step 1, then 5e37: an update overflows the prompt, caught right after it (before it
    # could be saved as a good epoch; which step depends on rounding). One step per epoch.
    result = run(home, *TUNE, "--data", "toy.jsonl", "--out", str(tmp_path), "--batch-size", "9", "--epochs", "5",
                 "--lr", "1e38", "--warmup-steps", "2")
    assert_one_error_line(result, "the updated prompt is not finite; stopped, the prompt of epoch")
    step = int(re.search(r"step (\d+) \(epoch \1\)", result.stderr).group(1))
    assert step >= 2 and f"the prompt of epoch {step - 1} is kept" in result.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_done"] == step - 1


def test_eval_compares_prompts_in_one_table(home):
    result = run(home, "eval", "--model", "tiny-random", "--data", "toy.jsonl", "--prompt", "run", "--prompt", "run",
                 "--hard-prompt", "Add:", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "eval: toy.jsonl, 9 rows (pairs)" and lines[1].split() == ["prompt", "loss", "exact", "acc"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["run", "run", "hard:"] and rows[0] == rows[1]  # the same prompt twice
    assert 0 < float(rows[0][1]) < 20 and rows[0][2] == "0.000" and rows[0][3] == "-"


def test_eval_rank_classification_on_sst2(home):
    result = run(home, "eval", "--model", "tiny-random", "--data", str(REPO / "data" / "sst2" / "dev.tsv"),
                 "--input-column", "text", "--output-column", "label", "--label-words", "0= negative,1= positive",
                 "--template", "{input} Sentiment:", "--limit", "6")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("6 rows (pairs), labels [' negative', ' positive']")
    accuracy = float(result.stdout.splitlines()[2].split()[-1])
    assert accuracy * 6 == pytest.approx(round(accuracy * 6))  # a count of right answers out of 6


BAD_EVAL = {
    "corrupt adapter": (["--data", "toy.jsonl", "--prompt", "corrupt-adapter"], "corrupt"),
    "token_dim mismatch": (["--data", "toy.jsonl", "--prompt", str(PEFT_PROMPT)], "token_dim 32"),
    "gold not a label": (["--data", "toy.jsonl", "--labels", " 1, 2"], "output ' 0' is not one of --labels"),
    "labels on text rows": (["--data", "text.jsonl", "--labels", " a"], "--labels needs input/output rows"),
    "zero batch": (["--data", "toy.jsonl", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
}


@pytest.mark.parametrize("name", BAD_EVAL)
def test_bad_eval_input_fails_cleanly(home, name):
    args, mention = BAD_EVAL[name]
    assert_one_error_line(run(home, "eval", "--model", "tiny-random", *args), mention)


def test_inspect_shows_norms_and_neighbours(home):
    result = run(home, "inspect", "run")  # the model comes from the adapter's base_model_name_or_path
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("run: 4 virtual tokens x 64 channels, model tiny-random")
    assert lines[1].startswith("wte row norms: mean") and len(lines) == 3 + 4
    assert all(line.count("'") + line.count('"') >= 10 for line in lines[3:])  # 5 repr'd tokens per row
    assert_one_error_line(run(home, "inspect", str(PEFT_PROMPT), "--model", "tiny-random"), "token_dim 32")


def test_generate_with_the_tuned_prompt(home):
    result = run(home, "generate", "--model", "tiny-random", "--prompt", "run", "--max-new-tokens", "3", "Q: 1 plus 1?")
    assert result.returncode == 0 and result.stdout.startswith("Q: 1 plus 1?"), result.stderr


def test_early_stopping_ends_cleanly_in_one_line(home, tmp_path):
    # lr 1e-30 leaves the float32 prompt as it was: every epoch ties epoch 0, which is no improvement
    result = run(home, *TUNE, "--data", "toy.jsonl", "--out", str(tmp_path / "es"), "--epochs", "5", "--lr", "1e-30",
                 "--val-split", "0.3", "--early-stopping", "2")
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert (f"stopped early after epoch 2/5: no better validation exact match for 2 epochs; the best is epoch 0, "
            f"in {tmp_path / 'es' / 'best'}\n") in result.stdout
    metrics = json.loads((tmp_path / "es" / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and metrics["validation"]["stopped_early"]
    assert (tmp_path / "es" / "best" / "adapter_model.safetensors").is_file()
