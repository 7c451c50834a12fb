"""The baselines (finetune.py, lora.py): every weight gradient against central finite differences in float64
on an odd config, training on a copy, LoRA's adapter format -- and the promise that the prompt-tuning path
never imports them, never computes a weight gradient, and never allocates one."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import tinyprompt
from tinyprompt import finetune, lora
from tinyprompt.errors import TinyPromptError
from tinyprompt.gpt2 import GPT2
from tinyprompt.gradcheck import check, finite_difference
from tinyprompt.weights import GPT2Config, flatten, random_params

# An odd config nobody tunes prompts on: 3 heads of 4 channels, 37 tokens, 11 positions, 2 blocks.
CONFIG = GPT2Config(vocab_size=37, n_positions=11, n_embd=12, n_layer=2, n_head=3)
EPS = 1e-4  # central differences in float64: truncation ~eps^2 = 1e-8 of the curvature; 1e-6 drowns in rounding


@pytest.fixture(scope="module")
def model64():
    return GPT2(CONFIG, random_params(CONFIG, seed=1, dtype=np.float64))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, CONFIG.vocab_size, (3, 7))
    ids[0, 4] = ids[0, 1]  # a token seen twice: its wte row collects both positions' gradients
    labels = ids.copy()
    labels[:, :2] = -100  # the first tokens are input only
    labels[1, 5:] = -100  # right padding
    return ids, labels


def loss_with(model, array, values, ids, labels, loss=None):
    """The model's loss with `array` (a weight or LoRA matrix, changed in place) set to `values`."""
    old = array.copy()
    array[...] = values
    try:
        return loss() if loss else model.loss(np.zeros((0, CONFIG.n_embd)), ids, labels)
    finally:
        array[...] = old


def test_every_weight_gradient_equals_finite_differences_float64(model64, batch):
    ids, labels = batch
    loss, grads = finetune.loss_and_weight_grads(model64, ids, labels)
    assert loss == pytest.approx(model64.loss(np.zeros((0, CONFIG.n_embd)), ids, labels), rel=1e-12)
    weights = flatten(model64.params)
    assert grads.keys() == weights.keys()  # every parameter of model.safetensors, by its checkpoint name
    for name, w in weights.items():
        numeric = finite_difference(lambda v, w=w: loss_with(model64, w, v, ids, labels), w, eps=EPS)
        check(name, grads[name], numeric, "finite_difference")


def test_lora_gradients_equal_finite_differences_float64(model64, batch):
    ids, labels = batch
    rng = np.random.default_rng(2)
    adapter = {k: rng.standard_normal(a.shape) * 0.3 for k, a in lora.init_lora(CONFIG, r=3).items()}  # B != 0
    loss, grads = lora.loss_and_lora_grads(model64, adapter, ids, labels, alpha=5)
    merged = lambda: lora.merge(model64, adapter, alpha=5).loss(np.zeros((0, CONFIG.n_embd)), ids, labels)
    assert loss == pytest.approx(merged(), rel=1e-12)  # the unmerged forward = the merged model's
    for name, a in adapter.items():
        numeric = finite_difference(lambda v, a=a: loss_with(model64, a, v, ids, labels, merged), a, eps=EPS)
        check(name, grads[name], numeric, "finite_difference")


def test_fine_tuning_trains_a_copy_in_one_flat_vector(batch):
    model = GPT2(CONFIG, random_params(CONFIG, seed=3))
    for w in flatten(model.params).values():
        w.flags.writeable = False  # as a memory-mapped checkpoint
    before = {k: w.copy() for k, w in flatten(model.params).items()}
    ids, labels = batch
    losses = []
    tuned = finetune.train_weights(model, [(ids, labels)] * 20, lr=1e-2, on_step=lambda s, loss: losses.append(loss))
    assert losses[-1] < 0.5 * losses[0], losses  # one batch, 20 steps: it memorises
    for name, w in flatten(model.params).items():
        assert np.array_equal(w, before[name]), f"{name} of the original model changed"
    tuned_weights = list(flatten(tuned.params).values())
    base = tuned_weights[0].base
    assert base is not None and base.ndim == 1 and base.size == sum(w.size for w in tuned_weights)
    assert all(np.shares_memory(w, base) for w in tuned_weights)  # llm.c's layout: a view per weight


def test_training_stops_on_a_nan_loss(batch):
    model = GPT2(CONFIG, random_params(CONFIG, seed=3))  # LoRA trains beside the model: poison the model itself
    with pytest.raises(TinyPromptError, match="step 1: the loss is nan"):
        lora.train_lora(model, [batch] * 3, lr=1e-2,
                        on_step=lambda s, loss: model.params["ln_f"]["bias"].__setitem__(0, np.nan))


def test_lora_starts_from_the_model_and_learns(batch):
    model = GPT2(CONFIG, random_params(CONFIG, seed=3))
    adapter = lora.init_lora(CONFIG, r=4, seed=0)
    ids, labels = batch
    assert np.array_equal(lora.merge(model, adapter).logits(ids), model.logits(ids))  # B = 0: no change yet
    losses = []
    trained = lora.train_lora(model, [(ids, labels)] * 40, lr=3e-2, r=4, on_step=lambda s, loss: losses.append(loss))
    # a random model's attention barely moves its output (0.02-scale weights): 3.60 -> 3.47 measured
    assert losses[0] == pytest.approx(model.loss(np.zeros((0, CONFIG.n_embd)), ids, labels), rel=1e-6)
    assert losses[-1] < losses[0] - 0.1, losses
    assert lora.merge(model, trained).loss(np.zeros((0, CONFIG.n_embd)), ids, labels) < losses[0]


def test_lora_save_load_round_trip_and_refusals(tmp_path):
    adapter = lora.init_lora(CONFIG, r=2, seed=1)
    adapter["h.1.attn.c_attn.lora_B.weight"][:] = 0.5
    lora.save_lora(tmp_path / "a", adapter, CONFIG, r=2, alpha=4)
    loaded, fields = lora.load_lora(tmp_path / "a", CONFIG)
    assert fields["peft_type"] == "LORA" and fields["r"] == 2 and fields["lora_alpha"] == 4
    assert loaded.keys() == adapter.keys() and all(np.array_equal(loaded[k], adapter[k]) for k in adapter)
    with pytest.raises(TinyPromptError, match="should be"):  # another model's adapter
        lora.load_lora(tmp_path / "a", GPT2Config(vocab_size=37, n_positions=11, n_embd=6, n_layer=2, n_head=3))
    adapter["h.0.attn.c_attn.lora_A.weight"][0, 0] = np.nan
    with pytest.raises(TinyPromptError, match="NaN"):
        lora.save_lora(tmp_path / "b", adapter, CONFIG, r=2)
    assert not (tmp_path / "b").exists()
    tinyprompt.save_prompt(tmp_path / "p", np.zeros((2, 12), np.float32), CONFIG)
    with pytest.raises(TinyPromptError, match="not a LoRA adapter"):
        lora.load_lora(tmp_path / "p")


PROMPT_PATH = """
import sys, numpy as np, tinyprompt as tp
import tinyprompt.cli, tinyprompt.demo, tinyprompt.train, tinyprompt.evaluate, tinyprompt.generate
model = tp.load_model("tiny-random")
model.loss_and_grad(np.zeros((2, model.config.n_embd), np.float32), np.ones((2, 3), int), np.ones((2, 3), int))
print(sorted(m for m in sys.modules if m in ("tinyprompt.finetune", "tinyprompt.lora")))
"""


def test_the_prompt_tuning_path_never_imports_the_baselines():
    run = subprocess.run([sys.executable, "-c", PROMPT_PATH], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr


def test_a_prompt_tuning_step_allocates_no_weight_gradient():
    """tracemalloc's peak during one step, on tiny-pretrained: a prompt-tuning step stays far below one copy of
    wte [V, C] (25.7 MB), the smallest allocation a weight gradient of the embedding would need; the control,
    fine-tuning on the same batch, allocates gradients for every weight and goes above all of them."""
    model = tinyprompt.load_model("tiny-pretrained")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5000, (4, 16))
    labels = np.full_like(ids, -100)
    labels[:, -1] = ids[:, -1]
    prompt = rng.standard_normal((10, model.config.n_embd)).astype(np.float32)
    weights_bytes = sum(w.nbytes for w in flatten(model.params).values())

    def peak(step):
        step()  # once to warm up (kernel compilation, caches)
        tracemalloc.start()
        try:
            step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    prompt_peak = peak(lambda: model.loss_and_grad(prompt, ids, labels))
    finetune_peak = peak(lambda: finetune.loss_and_weight_grads(model, ids, labels))
    assert prompt_peak < model.wte.nbytes / 4, f"prompt tuning step peaked at {prompt_peak / 1e6:.1f} MB"
    assert finetune_peak > weights_bytes, f"control: fine-tuning peaked at {finetune_peak / 1e6:.1f} MB"
