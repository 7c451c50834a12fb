"""`tinyprompt tune` end to end against torch + PEFT (run by `make test-reference`).

A tiny random GPT-2 with the real 50,257-token vocabulary is written to a temporary folder, a few pair rows to
a JSONL file, and a starting prompt to an adapter. `tinyprompt tune --init-from ... --no-shuffle` runs in a
fresh process; then the same training is done the way a PEFT user would: transformers' tokenizer, the rows
batched in file order with right padding and an attention mask, PEFT's prompt tuning model, and
torch.optim.AdamW on prompt_encoder["default"].embedding.weight. Every step's loss and the final prompt must
agree; the saved adapter must load in PEFT with the same logits (a forward: stable across versions), and
tinyprompt's greedy generation with it must equal a plain transformers loop (full forward on the prompt-prefixed
embeddings, no cache, argmax) token for token. PEFT's own `generate` is not the reference: its cache handling
for prompt tuning changes between releases (with transformers 5.25 / peft 0.21.2 it runs past `wpe`).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinyprompt
from tinyprompt.generate import generate
from tinyprompt.gradcheck import rel_error
from tinyprompt.prompt import load_prompt, save_prompt
from tinyprompt.weights import GPT2Config, random_params, save_checkpoint

pytestmark = pytest.mark.reference

from peft import PeftModel
from reference import greedy_reference, hf_model, peft_model
from transformers import PreTrainedTokenizerFast, get_linear_schedule_with_warmup

RTOL = 1e-4  # float32 forward and backward in both, then several optimizer steps
TEMPLATE = "Question: {input}\nAnswer:"
ROWS = [{"input": "What is two plus two?", "output": " four"}, {"input": "Capital of France?", "output": " Paris"},
        {"input": "Colour of the sky?", "output": " blue, mostly"}, {"input": "Opposite of hot?", "output": " cold"},
        {"input": "Three times three?", "output": " nine"}]
SETTINGS = {  # name: (CLI flags, the torch side's (accumulation, max_grad_norm, warmup, weight_decay))
    "adamw": ([], (1, None, 0, 0.0)),
    "accumulation-clipping-schedule": (["--accumulation-steps", "2", "--max-grad-norm", "0.5", "--lr-schedule",
                                        "linear", "--warmup-steps", "1", "--weight-decay", "0.01"], (2, 0.5, 1, 0.01)),
}
EPOCHS, BATCH, LR, P = 3, 2, 0.05, 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(folder, checkpoint dir, data file, init adapter dir, prompt0)."""
    home = tmp_path_factory.mktemp("reference-train")
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    save_checkpoint(home / "ckpt", config, random_params(config, seed=3))  # + tokenizer.json
    (home / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    prompt0 = np.random.default_rng(4).uniform(-0.5, 0.5, (P, config.n_embd)).astype(np.float32)
    save_prompt(home / "init", prompt0, config, str(home / "ckpt"))
    return home, home / "ckpt", home / "data.jsonl", home / "init", prompt0


def tune(setup, name, out=None):
    home, ckpt, data, init, _ = setup
    out = home / (out or name)
    args = ["tune", "--model", str(ckpt), "--data", str(data), "--out", str(out), "--init-from", str(init),
            "--no-shuffle", "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--lr", str(LR), "--optimizer",
            "adamw", "--template", TEMPLATE, "--quiet", *SETTINGS[name][0]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "tinyprompt.cli", *args], env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "metrics.json").read_text())


def peft_batches(ckpt):
    """The rows as a PEFT user builds them, with transformers' tokenizer, in file order, right-padded."""
    tok = PreTrainedTokenizerFast(tokenizer_file=str(ckpt / "tokenizer.json"))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    rows = []
    for r in ROWS:
        question, answer = tok(TEMPLATE.format(input=r["input"]))["input_ids"], tok(r["output"])["input_ids"] + [eos]
        rows.append((question + answer, [-100] * len(question) + answer))
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        T = max(len(ids) for ids, _ in chunk)
        ids = torch.tensor([ids + [eos] * (T - len(ids)) for ids, _ in chunk])
        labels = torch.tensor([labels + [-100] * (T - len(labels)) for _, labels in chunk])
        mask = torch.tensor([[1] * len(ids) + [0] * (T - len(ids)) for ids, _ in chunk])
        yield ids, labels, mask


def peft_tune(ckpt, prompt0, accumulation, max_grad_norm, warmup, weight_decay):
    """The same run in torch + PEFT: (loss of each optimizer step, final prompt)."""
    peft = peft_model(hf_model(ckpt), prompt0).eval()  # eval: no dropout (tinyprompt has none)
    weight = peft.prompt_encoder["default"].embedding.weight
    opt = torch.optim.AdamW([weight], lr=LR, weight_decay=weight_decay)
    micro = list(peft_batches(ckpt))
    groups = [micro[i : i + accumulation] for i in range(0, len(micro), accumulation)]
    sched = get_linear_schedule_with_warmup(opt, warmup, EPOCHS * len(groups)) if warmup else None
    losses = []
    for _ in range(EPOCHS):
        for group in groups:
            step_loss = 0.0
            for ids, labels, mask in group:
                loss = peft(input_ids=ids, attention_mask=mask, labels=labels).loss / len(group)
                loss.backward()
                step_loss += loss.item()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_([weight], max_grad_norm)
            opt.step()
            opt.zero_grad()
            if sched is not None:
                sched.step()
            losses.append(step_loss)
    return np.array(losses), weight.detach().numpy().copy()


@pytest.mark.parametrize("name", SETTINGS)
def test_tune_matches_peft_step_by_step(setup, name):
    _, ckpt, _, _, prompt0 = setup
    out, metrics = tune(setup, name)
    theirs, their_prompt = peft_tune(ckpt, prompt0, *SETTINGS[name][1])
    ours = np.array(metrics["step_losses"])
    assert len(ours) == len(theirs) == EPOCHS * metrics["steps_per_epoch"]
    np.testing.assert_allclose(ours, theirs, rtol=RTOL)
    prompt, _ = load_prompt(out)
    assert rel_error(prompt, their_prompt) <= RTOL
    assert rel_error(prompt - prompt0, their_prompt - prompt0) <= 1e-3  # the learned change itself, not just p0


def test_the_tuned_adapter_loads_in_peft_with_the_same_logits_and_generation(setup):
    """Logits against PEFT's forward; generation against the plain transformers loop."""
    ckpt = setup[1]
    out, _ = tune(setup, "adamw", out="for-peft")
    ours = tinyprompt.load_model(ckpt)
    prompt, _ = load_prompt(out, ours.config.n_embd)
    peft = PeftModel.from_pretrained(hf_model(ckpt), out)
    np.testing.assert_array_equal(peft.prompt_encoder["default"].embedding.weight.detach().numpy(), prompt)
    tok = tinyprompt.load_tokenizer(ckpt)
    ids = tok.encode(TEMPLATE.format(input="What is two plus two?"))
    with torch.no_grad():
        their_logits = peft(input_ids=torch.tensor([ids])).logits.numpy()  # [1, P+T, V]
    assert rel_error(ours.logits(np.array([ids]), prompt), their_logits) <= RTOL
    their_new = greedy_reference(hf_model(ckpt), ids, prompt, max_new_tokens=24)  # past wpe's old break at ~15
    our_new = generate(ours, ids, prompt, max_new_tokens=24, eos_id=-1)
    assert our_new == their_new and len(our_new) == 24
