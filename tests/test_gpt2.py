"""The model: forward and backward against the committed transformers + PEFT fixture (float32), the whole
loss_and_grad against finite differences (float64), and the proof that no weight gradient is computed."""

import sys
from pathlib import Path

import numpy as np
import pytest

import tinyprompt
from tinyprompt.errors import TinyPromptError
from tinyprompt.generate import generate
from tinyprompt.gradcheck import TOLERANCES, cmp, finite_difference, rel_error

FIXTURES = Path(__file__).parent / "fixtures"
_, RTOL32 = TOLERANCES["transformers"]  # float32, relative to the largest entry
_, RTOL_FD = TOLERANCES["finite_difference"]


@pytest.fixture(scope="module")
def model():
    return tinyprompt.load_model(FIXTURES / "peft-tiny")  # written by transformers' save_pretrained


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURES / "reference.npz"))


def test_logits_equal_transformers(model, ref):
    ours = model.logits(ref["input_ids"], ref["prompt"])
    assert ours.dtype == np.float32 and ours.shape == ref["logits"].shape
    assert rel_error(ours, ref["logits"]) < RTOL32, cmp("logits", ours, ref["logits"], quiet=True)[1]


def test_loss_and_grad_equal_peft(model, ref):
    loss, dprompt = model.loss_and_grad(ref["prompt"], ref["input_ids"], ref["labels"])
    assert loss == pytest.approx(float(ref["loss"]), rel=RTOL32)
    assert dprompt.shape == ref["prompt"].shape and dprompt.dtype == np.float32
    assert rel_error(dprompt, ref["dprompt"]) < RTOL32, cmp("dprompt", dprompt, ref["dprompt"], quiet=True)[1]


@pytest.mark.parametrize("targets", ["last", "all"])
def test_loss_and_grad_equal_finite_differences_float64(model, ref, targets):
    model64 = model.astype(np.float64)
    ids, labels = ref["input_ids"], ref["labels"].copy()
    if targets == "all":
        labels = np.where(labels == -100, ids, labels)  # every token a target, the padding included
    prompt = ref["prompt"].astype(np.float64)[:3]
    _, dprompt = model64.loss_and_grad(prompt, ids, labels)
    numeric = finite_difference(lambda p: model64.loss(p, ids, labels), prompt)
    assert rel_error(dprompt, numeric) <= RTOL_FD, cmp("dprompt vs finite diff", dprompt, numeric, quiet=True)[1]


def test_padding_does_not_change_a_row(model, ref):
    """Right padding is exact under the causal mask: a row alone gives the same loss as in a padded batch."""
    ids, labels, prompt = ref["input_ids"], ref["labels"], ref["prompt"]
    alone = model.loss(prompt, ids[2:3, :4], labels[2:3, :4])
    padded = model.loss(prompt, ids[2:3], labels[2:3])
    assert alone == pytest.approx(padded, rel=1e-6)


def test_no_weight_gradient_is_ever_computed(model, ref):
    """Watch every local variable and return value of every tinyprompt function while loss_and_grad runs:
    no array shaped like a weight matrix may appear unless it *is* a weight (read-only, shared memory)."""
    weights = [w for w in iter_arrays(model.params)]
    weight_shapes = {w.shape for w in weights if w.ndim == 2}
    seen = []

    def is_weight(a):
        return any(np.shares_memory(a, w) for w in weights)

    def profiler(frame, event, arg):
        if event == "return" and frame.f_code.co_filename.startswith(str(Path(tinyprompt.__file__).parent)):
            for name, value in [*frame.f_locals.items(), ("<return>", arg)]:
                for a in iter_arrays(value):
                    if a.shape in weight_shapes and not is_weight(a):
                        seen.append((frame.f_code.co_name, name, a.shape))

    # B=3, L=15, M=7 targets: no activation is [C, 3C], [C, C], [C, 4C], [4C, C], [V, C] or [N, C]
    sys.setprofile(profiler)
    try:
        model.loss_and_grad(ref["prompt"], ref["input_ids"], ref["labels"])
    finally:
        sys.setprofile(None)
    assert not seen, f"weight-shaped arrays computed in the backward: {seen}"


def iter_arrays(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_arrays(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_arrays(v)


def test_weights_are_read_only(model):
    with pytest.raises(ValueError):
        model.wte[0, 0] = 1.0


def test_kv_cache_generation_equals_full_recompute(model, ref):
    ids, prompt = list(ref["input_ids"][0, :6]), ref["prompt"]
    new = generate(model, ids, prompt, max_new_tokens=8, eos_id=-1)
    seq = list(ids)
    for _ in range(8):  # no cache: run the whole sequence each time, take the argmax at the end
        seq.append(int(np.argmax(model.logits(np.array([seq]), prompt)[0, -1])))
    assert new == seq[len(ids):]


@pytest.mark.parametrize("bad", ["long", "labels_shape", "no_targets", "prompt_dim", "id_range"])
def test_bad_inputs_raise_clear_errors(model, ref, bad):
    ids, labels, prompt = ref["input_ids"], ref["labels"], ref["prompt"]
    n = model.config.n_positions
    args = {
        "long": (prompt, np.zeros((1, n), np.int64), np.zeros((1, n), np.int64)),
        "labels_shape": (prompt, ids, labels[:, :3]),
        "no_targets": (prompt, ids, np.full_like(labels, -100)),
        "prompt_dim": (prompt[:, :5], ids, labels),
        "id_range": (prompt, ids + 1000, labels),
    }[bad]
    with pytest.raises(TinyPromptError):
        model.loss_and_grad(*args)


def test_a_batch_can_mix_prompts(model, ref):
    """Many tasks, one frozen model: each row of a batch with its own soft prompt [B, P, C]."""
    ids, prompt = ref["input_ids"][:2], ref["prompt"]
    other = prompt[::-1].copy()
    mixed = model.logits(ids, np.stack([prompt, other]))
    np.testing.assert_allclose(mixed[0], model.logits(ids[:1], prompt)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixed[1], model.logits(ids[1:], other)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("P", [0, 1, 5])
def test_loss_and_grad_agrees_with_concatenated_logits(model, ref, P):
    """loss_and_grad runs the prompt once as a KV-cache prefix; logits() concatenates it in every row.
    Same loss, float32; P = 0 (a hard prompt or none) works too."""
    ids, labels, prompt = ref["input_ids"], ref["labels"].copy(), ref["prompt"][:P]
    labels[:, 0] = ids[:, 0]  # with P > 0 the last virtual token predicts the first text token
    logits = model.logits(ids, prompt).astype(np.float64)
    full = np.concatenate([np.full((3, P), -100), labels], axis=1)[:, 1:]  # shifted targets of [B, L - 1]
    b, p = np.nonzero(full != -100)
    logp = logits[b, p] - np.log(np.exp(logits[b, p]).sum(-1, keepdims=True))
    loss, dprompt = model.loss_and_grad(prompt, ids, labels)
    assert loss == pytest.approx(-logp[np.arange(len(b)), full[b, p]].mean(), rel=1e-5)
    assert dprompt.shape == (P, model.config.n_embd)
