"""The round trip to PEFT + accelerate and back, as README.md ("From and to PEFT") shows it (`make test-reference`).

1. Tune here with `tinyprompt tune`, then continue in PyTorch: the adapter loaded as PEFT resumes a prompt-tuning
   adapter (PEFT refuses is_trainable=True for prompt learning: config with inference_mode off, get_peft_model,
   set_peft_model_state_dict), an accelerate-prepared AdamW step (what a GPU cluster would run), save_pretrained
   -- and read the result here.
2. Tune with PEFT (get_peft_model, a torch step, save_pretrained), then `tinyprompt inspect` and `eval` it here,
   with the same loss PEFT computes.
Both on tiny-random, which is a Hugging Face checkpoint folder that transformers loads as it is.
"""

import json

import numpy as np
import pytest
import torch

import tinyprompt as tp
from tinyprompt.cli import main as tinyprompt_cli
from tinyprompt.hub import find_weights

pytestmark = [pytest.mark.reference, pytest.mark.usefixtures("no_network")]

from accelerate import Accelerator
from peft import PromptTuningConfig, get_peft_model, load_peft_weights, set_peft_model_state_dict
from reference import hf_model

ROWS = [{"input": f"{a} + {b} =", "output": f" {a + b}"} for a in range(4) for b in range(4)]
RTOL32 = 1e-4  # float32 losses


@pytest.fixture
def base(tmp_path):
    """tiny-random's folder, and the rows as a .jsonl file."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return find_weights("tiny-random"), data


def torch_batch(rows):
    """input_ids, attention_mask, labels [B, T] as a PEFT user builds them: right padding with eos, the loss
    on the output and the closing eos only (what tinyprompt.data does with {input, output} rows)."""
    tok = tp.load_tokenizer()
    ids, labels = [], []
    for row in rows:
        prompt, answer = tok.encode(row["input"]), tok.encode(row["output"]) + [tok.eos_id]
        ids.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    T = max(map(len, ids))
    mask = [[1] * len(r) + [0] * (T - len(r)) for r in ids]
    labels = [r + [-100] * (T - len(r)) for r in labels]
    ids = [r + [tok.eos_id] * (T - len(r)) for r in ids]
    return torch.tensor(ids), torch.tensor(mask), torch.tensor(labels)


def test_tuned_here_continues_in_peft_with_accelerate_and_comes_back(base, tmp_path, capsys):
    folder, data = base
    run = tmp_path / "run"
    assert tinyprompt_cli(["tune", "--model", str(folder), "--data", str(data), "--num-virtual-tokens", "4",
                           "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    ours, _ = tp.load_prompt(run)

    accelerator = Accelerator(cpu=True)  # on a cluster: `accelerate launch` and no cpu=True
    config = PromptTuningConfig.from_pretrained(run)
    config.inference_mode = False  # tinyprompt writes True, as PEFT does for an adapter meant for serving
    peft = get_peft_model(hf_model(folder), config)
    set_peft_model_state_dict(peft, load_peft_weights(run))
    prompt_weight = peft.prompt_encoder["default"].embedding.weight
    np.testing.assert_array_equal(prompt_weight.detach().numpy(), ours)
    assert [name for name, p in peft.named_parameters() if p.requires_grad] == [
        "prompt_encoder.default.embedding.weight"]  # the base model stays frozen there too
    optimizer = torch.optim.AdamW([prompt_weight], lr=0.03)
    peft, optimizer = accelerator.prepare(peft, optimizer)
    ids, mask, labels = torch_batch(ROWS)
    loss = peft(input_ids=ids, attention_mask=mask, labels=labels).loss
    model = tp.load_model(folder)
    assert abs(loss.item() - tp.evaluate(model, tp.load_tokenizer(), ROWS, ours)["loss"]) <= RTOL32 * loss.item()
    accelerator.backward(loss)
    optimizer.step()
    accelerator.unwrap_model(peft).save_pretrained(tmp_path / "continued")

    continued, fields = tp.load_prompt(tmp_path / "continued", n_embd=model.config.n_embd)
    assert fields["peft_type"] == "PROMPT_TUNING" and continued.shape == ours.shape
    np.testing.assert_array_equal(continued, prompt_weight.detach().numpy())
    assert not np.array_equal(continued, ours)  # the step really moved it


def test_a_peft_adapter_is_inspected_and_evaluated_here(base, tmp_path, capsys):
    folder, data = base
    torch.manual_seed(0)
    peft = get_peft_model(hf_model(folder), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5,
                                                               prompt_tuning_init="RANDOM"))
    peft.train()
    optimizer = torch.optim.AdamW(peft.parameters(), lr=0.03)
    ids, mask, labels = torch_batch(ROWS)
    peft(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    optimizer.step()
    peft.save_pretrained(tmp_path / "adapter")
    peft.eval()
    with torch.no_grad():
        theirs = peft(input_ids=ids, attention_mask=mask, labels=labels).loss.item()

    assert tinyprompt_cli(["inspect", str(tmp_path / "adapter"), "--model", str(folder), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 virtual tokens x 64 channels" in out
    assert tinyprompt_cli(["eval", "--model", str(folder), "--prompt", str(tmp_path / "adapter"),
                           "--data", str(data)]) == 0
    table = capsys.readouterr().out
    ours = tp.evaluate(tp.load_model(folder), tp.load_tokenizer(), ROWS, tp.load_prompt(tmp_path / "adapter")[0])
    assert abs(ours["loss"] - theirs) <= RTOL32 * theirs
    assert f"{ours['loss']:.4f}" in table  # the command prints the same number
