"""The baseline prompt tuning is weighed against: full fine-tuning, every weight trained. (LoRA: lora.py.)

Prompt tuning's backward (gpt2.py) carries gradients through the frozen weights to the prompt and computes
no weight gradient. This one is the same forward and backward, op by op, with the same functions of
`layers.py` / `kernels.py`, plus the weight gradients beside each activation gradient:

    forward: y = x @ W + b        ->  dx = dy @ W.T (as in gpt2.py),  dW = x.T @ dy,  db = sum(dy)
    forward: y = xhat * w + b     ->  dxhat (as in gpt2.py),          dw = sum(dy * xhat), db = sum(dy)
    forward: x = wte[ids] + wpe   ->  dwte[ids] += dx,  dwpe[:T] += sum over rows of dx
    forward: logits = h @ wte.T   ->  dh = dlogits @ wte,  dwte += dlogits.T @ h   (wte is tied: two parts)

So the forward must keep every linear layer's input (x for dW), which the prompt-tuning cache does not.
The parameters live in one flat float32 vector with a view per weight, as llm.c keeps them, and the gradients
in a twin vector: the optimizer of prompt tuning (optim.AdamW) then updates all of them in one call.
The shipped checkpoint stays read-only: training writes a copy. Nothing in the prompt-tuning path (gpt2.py,
train.py, api.py) imports this module or lora.py; tests/test_baselines.py checks it.
Size letters as in layers.py; R = r LoRA rank (lora.py).
"""

from typing import NamedTuple

import numpy as np

from .errors import TinyPromptError
from .gpt2 import GPT2, F
from .layers import merge_heads, split_heads
from .optim import AdamW, clip_grad_norm
from .threads import matmul  # as gpt2.py: a big product on every core, a small one on one
from .weights import flatten, param_shapes, unflatten

# --- one flat vector, a view per weight (llm.c's layout) ---------------------------------------


def flat_views(shapes, dtype=np.float32):
    """{name: shape} -> (one zeroed 1-D vector, {name: a view of it with that shape}), in the order given."""
    flat = np.zeros(sum(int(np.prod(s)) for s in shapes.values()), dtype)
    views, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        views[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return flat, views


def trainable_copy(model):
    """A writable float32 copy of every weight in one flat vector -> (flat [N], GPT2 whose params are views
    into it). The model it came from (memory-mapped, read-only) is not touched."""
    flat, views = flat_views(param_shapes(model.config))
    for name, weight in flatten(model.params).items():
        views[name][...] = weight
    return flat, GPT2(model.config, unflatten(views), model.name_or_path)


# --- the forward, keeping each linear layer's input ---------------------------------------------


class BlockCache(NamedTuple):
    """What the fine-tuning backward needs of one block: the inputs of its four linear layers included."""
    ln_1: tuple  # (xhat [B, T, C], rstd [B, T, 1], weight [C])
    h1: np.ndarray  # ln_1's output, c_attn's input [B, T, C]
    u: object  # LoRA only: h1 @ A.T [B, T, R] (None without LoRA)
    attn: tuple  # (q, k, v [B, H, T, D], att [B, H, T, T])
    y: np.ndarray  # merged heads, attn.c_proj's input [B, T, C]
    ln_2: tuple  # (xhat, rstd, weight)
    h2: np.ndarray  # ln_2's output, c_fc's input [B, T, C]
    f: np.ndarray  # c_fc's output, GELU's input [B, T, 4C]
    g: np.ndarray  # GELU's output, mlp.c_proj's input [B, T, 4C]


def block_forward(x, ln_1, attn, ln_2, mlp, n_head, eps, lora=None):
    """x [B, T, C] -> [B, T, C], as gpt2.block_forward. lora = (A [R, C], B [3C, R], scaling) adds
    scaling * h1 @ A.T @ B.T to c_attn's output (Hu et al. 2021, eq. 3)."""
    h1, ln_1_cache = F.layer_norm_forward(x, **ln_1, eps=eps)
    qkv = F.linear_forward(h1, **attn["c_attn"])  # [B, T, C] -> [B, T, 3C]
    u = None
    if lora is not None:
        A, B, scaling = lora
        u = h1 @ A.T  # [B, T, C] -> [B, T, R]
        qkv = qkv + scaling * (u @ B.T)  # [B, T, R] -> [B, T, 3C]
    C = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))  # 3 x [B, H, T, D]
    y, attn_cache = F.attention_forward(q, k, v)
    y = merge_heads(y)  # [B, H, T, D] -> [B, T, C]
    x = x + F.linear_forward(y, **attn["c_proj"])  # residual 1
    h2, ln_2_cache = F.layer_norm_forward(x, **ln_2, eps=eps)
    f = F.linear_forward(h2, **mlp["c_fc"])  # [B, T, C] -> [B, T, 4C]
    g, _ = F.gelu_forward(f)
    x = x + F.linear_forward(g, **mlp["c_proj"])  # residual 2; [B, T, 4C] -> [B, T, C]
    return x, BlockCache(ln_1_cache, h1, u, attn_cache, y, ln_2_cache, h2, f, g)


# --- the backward: each activation gradient as in gpt2.py, each weight gradient beside it -------


def linear_weight_grads(x, dy, grads, prefix):
    """forward: y = x @ W + b  ->  dW = x.T @ dy [in, out], db = sum of dy over every position [out]."""
    if prefix + ".weight" in grads:
        x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])  # [B*T, in], [B*T, out]
        grads[prefix + ".weight"] += matmul(x2.T, dy2)  # [in, B*T] @ [B*T, out] -> [in, out]
        grads[prefix + ".bias"] += dy2.sum(axis=0)


def layer_norm_weight_grads(dy, cache, grads, prefix):
    """forward: y = xhat * w + b  ->  dw = sum of dy * xhat, db = sum of dy, over every position [C]."""
    if prefix + ".weight" in grads:
        xhat, C = cache[0], dy.shape[-1]
        grads[prefix + ".weight"] += (dy * xhat).reshape(-1, C).sum(axis=0)
        grads[prefix + ".bias"] += dy.reshape(-1, C).sum(axis=0)


def block_backward(dx, cache, ln_1, attn, ln_2, mlp, n_head, grads, prefix, lora=None):
    """dx [B, T, C] -> dx of the block's input; adds the block's weight gradients into `grads` (only the
    names it holds: all of them for fine-tuning, none for LoRA, which gets its dA, dB instead)."""
    # forward: x = x + mlp.c_proj(gelu(c_fc(ln_2(x))))
    dg = F.linear_backward(dx, mlp["c_proj"]["weight"])  # [B, T, C] -> [B, T, 4C]
    linear_weight_grads(cache.g, dx, grads, f"{prefix}.mlp.c_proj")
    df = F.gelu_backward(dg, cache.f)
    dh2 = F.linear_backward(df, mlp["c_fc"]["weight"])  # [B, T, 4C] -> [B, T, C]
    linear_weight_grads(cache.h2, df, grads, f"{prefix}.mlp.c_fc")
    layer_norm_weight_grads(dh2, cache.ln_2, grads, f"{prefix}.ln_2")
    dx = dx + F.layer_norm_backward(dh2, cache.ln_2)  # the residual adds both paths
    # forward: x = x + attn.c_proj(merge(attention(split(c_attn(ln_1(x))))))
    dy = F.linear_backward(dx, attn["c_proj"]["weight"])  # [B, T, C] -> [B, T, C]
    linear_weight_grads(cache.y, dx, grads, f"{prefix}.attn.c_proj")
    dq, dk, dv = F.attention_backward(split_heads(dy, n_head), cache.attn)  # 3 x [B, H, T, D]
    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)  # [B, T, 3C]
    dh1 = F.linear_backward(dqkv, attn["c_attn"]["weight"])  # [B, T, 3C] -> [B, T, C]
    linear_weight_grads(cache.h1, dqkv, grads, f"{prefix}.attn.c_attn")
    if lora is not None:
        # forward: qkv += scaling * u @ B.T with u = h1 @ A.T
        A, B, scaling = lora
        du = scaling * (dqkv @ B)  # [B, T, 3C] @ [3C, R] -> [B, T, R]
        d = dqkv.reshape(-1, dqkv.shape[-1])  # [B*T, 3C]
        grads[f"{prefix}.attn.c_attn.lora_B.weight"] += scaling * (d.T @ cache.u.reshape(len(d), -1))  # [3C, R]
        grads[f"{prefix}.attn.c_attn.lora_A.weight"] += du.reshape(len(d), -1).T @ cache.h1.reshape(len(d), -1)
        dh1 = dh1 + du @ A  # [B, T, R] @ [R, C] -> [B, T, C]: the LoRA path's share of dx
    layer_norm_weight_grads(dh1, cache.ln_1, grads, f"{prefix}.ln_1")
    return dx + F.layer_norm_backward(dh1, cache.ln_1)


def loss_and_grads_into(model, input_ids, labels, grads, loras=None):
    """The mean cross-entropy of `model.loss_and_grad`'s convention (labels aligned with input_ids and
    shifted inside, -100 ignored, no prompt), adding d loss / d weight into `grads` (zeroed arrays keyed by
    checkpoint name; a name left out gets nothing). `loras`: per block (A, B, scaling), or None. -> loss."""
    input_ids, labels = np.asarray(input_ids), np.asarray(labels)
    if labels.shape != input_ids.shape:
        raise TinyPromptError(f"labels {labels.shape} must have the shape of input_ids {input_ids.shape}")
    b, p, target = model.targets(labels, 0)  # position p of row b predicts target
    T = int(p.max()) + 1  # nothing after the last target feeds the loss (causal mask)
    ids, cfg, wte = input_ids[:, :T], model.config, model.wte
    x = model.embed(ids)  # [B, T, C]
    caches = []
    for i, block in enumerate(model.params["h"]):
        x, cache = block_forward(x, **block, n_head=cfg.n_head, eps=cfg.layer_norm_epsilon,
                                 lora=None if loras is None else loras[i])
        caches.append(cache)
    h, ln_f_cache = F.layer_norm_forward(x[b, p], **model.params["ln_f"], eps=cfg.layer_norm_epsilon)  # [M, C]
    loss, ce_cache = F.cross_entropy_forward(matmul(h, wte.T), target)  # logits only where a target is: [M, V]

    # forward: loss = cross_entropy(h @ wte.T): the head is wte itself, so wte gets its first gradient here
    dlogits = F.cross_entropy_backward(ce_cache)  # [M, V]
    if "wte.weight" in grads:
        grads["wte.weight"] += matmul(dlogits.T, h)  # [V, M] @ [M, C] -> [V, C]
    dh = matmul(dlogits, wte)  # [M, V] -> [M, C]
    layer_norm_weight_grads(dh, ln_f_cache, grads, "ln_f")
    dx = np.zeros_like(x)  # [B, T, C]; positions without a target get nothing from the head
    dx[b, p] = F.layer_norm_backward(dh, ln_f_cache)
    for i in reversed(range(len(caches))):
        dx = block_backward(dx, caches[i], **model.params["h"][i], n_head=cfg.n_head, grads=grads,
                            prefix=f"h.{i}", lora=None if loras is None else loras[i])
    # forward: x = wte[ids] + wpe[:T]: each token's row of wte gets its position's gradient (a token seen
    # twice, twice), and wpe's first T rows the sum over the batch
    if "wte.weight" in grads:
        np.add.at(grads["wte.weight"], ids.reshape(-1), dx.reshape(-1, dx.shape[-1]))
        grads["wpe.weight"][:T] += dx.sum(axis=0)
    return float(loss)


def loss_and_weight_grads(model, input_ids, labels):
    """-> (loss, {checkpoint name: d loss / d weight}): every parameter of model.safetensors, wte with both its
    embedding and its output-head gradient. For training, `train_weights` writes into one flat vector."""
    grads = {name: np.zeros(shape, model.dtype) for name, shape in param_shapes(model.config).items()}
    return loss_and_grads_into(model, input_ids, labels, grads), grads


def fit(flat, grad_flat, step_loss, batches, lr, weight_decay=0.0, max_grad_norm=None, on_step=None):
    """AdamW on one flat float32 vector: for each batch, zero the twin gradient vector, let
    step_loss(input_ids, labels) fill it and return the loss, then one update of every weight at once.
    on_step(step, loss) after each update. A NaN or inf loss stops with an error (the weights would be lost)."""
    opt = AdamW(weight_decay=weight_decay)
    for step, (input_ids, labels) in enumerate(batches):
        grad_flat[:] = 0
        loss = step_loss(input_ids, labels)
        if not np.isfinite(loss):
            raise TinyPromptError(f"step {step}: the loss is {loss} (lr {lr} too high?)")
        if max_grad_norm is not None:
            clip_grad_norm(grad_flat, max_grad_norm)
        opt.step(flat, grad_flat, lr)
        if on_step is not None:
            on_step(step, loss)
    return opt


def train_weights(model, batches, lr, weight_decay=0.0, max_grad_norm=None, on_step=None):
    """Full fine-tuning: AdamW on a float32 copy of every weight, one step per (input_ids, labels) batch.
    -> the fine-tuned GPT2 (a new model; `model` itself is not changed)."""
    flat, tuned = trainable_copy(model)
    grad_flat, grads = flat_views(param_shapes(model.config))
    fit(flat, grad_flat, lambda ids, labels: loss_and_grads_into(tuned, ids, labels, grads), batches, lr,
        weight_decay, max_grad_norm, on_step)
    return tuned
