"""GPT-2 with a soft prompt in front: the forward pass, and the backward pass to the prompt only.

    ids [B, T] --wte--> [B, T, C] --(prompt [P, C] in front)--> [B, L, C] --+wpe--> n_layer blocks
      --> ln_f --> x @ wte.T --> logits [B, L, V]

The backward (`loss_and_grad`) is the forward read in reverse, one line per op, and it computes the
gradient of activations only: the frozen weights never get one. Size letters: see `layers.py`.
"""

import os
from typing import NamedTuple

import numpy as np

from .data import IGNORE_INDEX
from .errors import TinyPromptError
from .layers import merge_heads, split_heads  # plain reshapes: the same for kernels and twins
from .threads import matmul  # `@` on one BLAS thread or all, by the size of the product

# The ops: the Numba kernels, or their readable NumPy twins with TINYPROMPT_KERNELS=numpy (same names,
# same results; tests/test_kernels.py holds them to it).
if os.environ.get("TINYPROMPT_KERNELS") == "numpy":
    from . import layers as F
else:
    from . import kernels as F


# --- multi-head causal self-attention ----------------------------------------------------------


def attn_forward(x, c_attn, c_proj, n_head, past=None, start=0):
    """x [B, L, C] -> [B, L - start, C]: the output of positions start.. only (every position still gives its
    key and value). `past` = (k, v) [B, H, Lpast, D] of earlier positions (KV cache)."""
    qkv = F.linear_forward(x, **c_attn)  # [B, L, C] -> [B, L, 3C]
    C = qkv.shape[-1] // 3  # slices, not np.split: the same views, without its Python overhead (generation)
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))  # 3 x [B, H, L, D]
    if past is not None:
        k, v = np.concatenate([past[0], k], axis=2), np.concatenate([past[1], v], axis=2)
    y, cache = F.attention_forward(q[:, :, start:], k, v)  # [B, H, L - start, D]; cache = (q, k, v, att)
    return F.linear_forward(merge_heads(y), **c_proj), cache  # [B, L - start, C] -> [B, L - start, C]


def attn_backward(dout, cache, c_attn, c_proj, n_head, L, dpresent=None, need_dx=True):
    """-> (dx [B, L, C], dpast): dpast = the gradient of the `past` keys and values (zero-length without a
    past). `dpresent` = the gradient that later queries (a pass that used this one as its past) sent to
    this pass's own keys and values: it adds to theirs. dout covers the last dout.shape[1] of the L
    positions (attn_forward's `start`). need_dx=False: dpast alone (dx is None)."""
    dy = split_heads(F.linear_backward(dout, c_proj["weight"]), n_head)  # [B, Lq, C] -> [B, H, Lq, D]
    dq, dk, dv = F.attention_backward(dy, cache)  # dq [B, H, Lq, D]; dk, dv [B, H, Lpast + L, D]
    n_past = dk.shape[2] - L
    dpast, dk, dv = (dk[:, :, :n_past], dv[:, :, :n_past]), dk[:, :, n_past:], dv[:, :, n_past:]
    if not need_dx:
        return None, dpast
    if dpresent is not None:
        dk, dv = dk + dpresent[0], dv + dpresent[1]
    dq = merge_heads(dq)  # [B, Lq, C]; the positions before start asked no query: their d q is 0
    dq = np.concatenate([np.zeros((dq.shape[0], L - dq.shape[1], dq.shape[2]), dq.dtype), dq], axis=1)
    dqkv = np.concatenate([dq, merge_heads(dk), merge_heads(dv)], axis=-1)  # [B, L, 3C]
    return F.linear_backward(dqkv, c_attn["weight"]), dpast  # [B, L, 3C] -> [B, L, C]


# --- MLP ---------------------------------------------------------------------------------------


def mlp_forward(x, c_fc, c_proj):
    h, gelu_cache = F.gelu_forward(F.linear_forward(x, **c_fc))  # [B, L, C] -> [B, L, 4C]
    return F.linear_forward(h, **c_proj), gelu_cache  # [B, L, 4C] -> [B, L, C]


def mlp_backward(dout, gelu_cache, c_fc, c_proj):
    dh = F.linear_backward(dout, c_proj["weight"])  # [B, L, C] -> [B, L, 4C]
    return F.linear_backward(F.gelu_backward(dh, gelu_cache), c_fc["weight"])  # -> [B, L, C]


# --- transformer block: pre-norm, two residual branches ----------------------------------------


class BlockCache(NamedTuple):
    """What a block's forward keeps for its backward."""
    ln_1: tuple  # (xhat [B, L, C], rstd [B, L, 1], weight [C])
    attn: tuple  # (q [B, H, L - start, D], k, v [B, H, Lpast + L, D], att [B, H, L - start, Lpast + L])
    ln_2: tuple  # (xhat [B, L - start, C], rstd [B, L - start, 1], weight [C])
    mlp: object  # the c_fc output before GELU [B, L - start, 4C]


def block_forward(x, ln_1, attn, ln_2, mlp, n_head, eps, past=None, start=0):
    """x [B, L, C] -> [B, L - start, C]: with start > 0, only the last positions go on (all give k, v)."""
    h, ln_1_cache = F.layer_norm_forward(x, **ln_1, eps=eps)
    a, attn_cache = attn_forward(h, **attn, n_head=n_head, past=past, start=start)
    x = x[:, start:] + a  # residual 1
    h, ln_2_cache = F.layer_norm_forward(x, **ln_2, eps=eps)
    m, mlp_cache = mlp_forward(h, **mlp)
    return x + m, BlockCache(ln_1_cache, attn_cache, ln_2_cache, mlp_cache)  # residual 2


def block_backward(dx, cache, ln_1, attn, ln_2, mlp, n_head, dpresent=None, need_dx=True):
    """-> (dx, dpast); see attn_backward for `dpresent`, `dpast` and `need_dx`."""
    # forward: x = x + mlp(ln_2(x)): the gradient goes straight through and through the branch
    dx = dx + F.layer_norm_backward(mlp_backward(dx, cache.mlp, **mlp), cache.ln_2)
    # forward: x = x[:, start:] + attn(ln_1(x))
    L = cache.ln_1[0].shape[1]
    da, dpast = attn_backward(dx, cache.attn, **attn, n_head=n_head, L=L, dpresent=dpresent, need_dx=need_dx)
    if not need_dx:
        return None, dpast
    dx_in = F.layer_norm_backward(da, cache.ln_1)  # [B, L, C]
    dx_in[:, L - dx.shape[1]:] += dx
    return dx_in, dpast


def present(caches):
    """Per block, the (k, v) [B, H, L, D] of all positions so far, out of the attention caches: the KV
    cache that later positions attend to (generation, and the text attending to the soft prompt)."""
    return [(cache.attn[1], cache.attn[2]) for cache in caches]


class StepCache(NamedTuple):
    """What the prompt-tuning forward (`GPT2.step_forward`) keeps for its backward. M = counted targets."""
    P: int  # virtual tokens
    prompt: list  # per block, the BlockCache of the prompt pass, run once: [1, P, ...]
    text: list  # per block, the BlockCache of the text pass: [B, T, ...] ([B, T - start, ...] after the last)
    x_shape: tuple  # (B, P + T - start, C): the final hidden states, prompt rows then text rows
    b: object  # [M] the row of each target
    p: object  # [M] its position in x
    ln_f: tuple  # ln_f's cache on the M target positions: (xhat [M, C], rstd [M, 1], weight [C])
    ce: tuple  # cross-entropy's cache (probabilities [M, V], targets [M])


# --- the model ---------------------------------------------------------------------------------


class GPT2:
    """A pretrained GPT-2 whose weights are read-only arrays (memory-mapped from the checkpoint)."""

    def __init__(self, config, params, name_or_path=""):
        self.config, self.params, self.name_or_path = config, params, str(name_or_path)

    @property
    def wte(self):
        return self.params["wte"]["weight"]  # [V, C]: the input embedding, and the tied output head

    @property
    def dtype(self):
        return self.wte.dtype

    def astype(self, dtype):
        """A copy of the model in another dtype (float64 for gradient checks). Copies every weight."""
        def cast(p):
            if isinstance(p, dict):
                return {k: cast(v) for k, v in p.items()}
            if isinstance(p, list):
                return [cast(v) for v in p]
            return p.astype(dtype)
        return GPT2(self.config, cast(self.params), self.name_or_path)

    def embed(self, input_ids, prompt=None, start=0):
        """Vectorize ids [B, T], put the prompt [P, C] in front, add positions: -> [B, P+T, C]."""
        input_ids = np.asarray(input_ids)
        if input_ids.ndim != 2 or not np.issubdtype(input_ids.dtype, np.integer):
            raise TinyPromptError(f"input_ids must be an integer array [B, T], got {input_ids.dtype} {input_ids.shape}")
        if input_ids.size and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
            raise TinyPromptError(f"token id out of range [0, {self.config.vocab_size}): {input_ids.min()}..{input_ids.max()}")
        P = 0 if prompt is None else self.check_prompt(prompt, batch=input_ids.shape[0]).shape[-2]
        L = start + P + input_ids.shape[1]
        if L > self.config.n_positions:
            raise TinyPromptError(f"sequence of {L} positions ({P} virtual + {L - P} tokens) exceeds the "
                                  f"model's context of n_positions={self.config.n_positions}")
        return F.embedding_forward(input_ids, self.wte, self.params["wpe"]["weight"], prompt, start)

    def check_prompt(self, prompt, batch=None):
        """A prompt is [P, C], or with `batch` rows also [B, P, C]: one prompt per row (many tasks, one model)."""
        prompt, C = np.asarray(prompt), self.config.n_embd
        if prompt.shape[-1:] != (C,) or not (prompt.ndim == 2 or batch and prompt.shape[:1] == (batch,)):
            wanted = f"[P, {C}]" + (f" or [{batch}, P, {C}]" if batch else "")
            raise TinyPromptError(f"prompt must be {wanted} for this model, got {list(prompt.shape)}")
        return prompt

    def forward(self, x, past=None, start=0):
        """Embedded input [B, L, C] -> hidden states [B, L, C] before ln_f, plus each block's cache.
        With `past` (a list of per-block (k, v)), x holds only the new positions. With `start`, the last
        block gives only the positions start.. ([B, L - start, C]): the others feed nothing after it."""
        caches, last = [], len(self.params["h"]) - 1
        for i, block in enumerate(self.params["h"]):
            x, cache = block_forward(x, **block, n_head=self.config.n_head, eps=self.config.layer_norm_epsilon,
                                     past=None if past is None else past[i], start=start if i == last else 0)
            caches.append(cache)
        return x, caches

    def head(self, x):
        """[..., C] -> [..., V]: the final layer norm, then the output head tied to wte (no copy)."""
        h, _ = F.layer_norm_forward(x, **self.params["ln_f"], eps=self.config.layer_norm_epsilon)
        return matmul(h.reshape(-1, h.shape[-1]), self.wte.T).reshape(*h.shape[:-1], -1)  # one 2-D matmul, not B

    def logits(self, input_ids, prompt=None):
        """ids [B, T] (+ prompt [P, C], or [B, P, C] for a prompt per row) -> logits [B, P+T, V], equal to
        transformers' GPT2LMHeadModel(inputs_embeds=cat(prompt, wte[ids])).logits."""
        x, _ = self.forward(self.embed(input_ids, prompt))
        return self.head(x)

    def targets(self, labels, P):
        """Which positions are scored: position p predicts label p+1 of [-100] * P + labels (a shift, as in
        transformers and PEFT; the virtual tokens carry -100, so they are never a target themselves).
        Returns rows b [M], positions p [M], target ids [M]."""
        labels = np.asarray(labels)
        B = labels.shape[0]
        full = np.concatenate([np.full((B, P), IGNORE_INDEX, labels.dtype), labels], axis=1)  # [B, L]
        b, p = np.nonzero(full[:, 1:] != IGNORE_INDEX)  # position p predicts full[b, p + 1]
        if len(b) == 0:
            raise TinyPromptError("no position carries a target (all labels are -100): the loss is undefined")
        return b, p, full[b, p + 1]

    def loss_and_grad(self, prompt, input_ids, labels, need_grad=True):
        """Mean cross-entropy over the counted target tokens, and its gradient d loss / d prompt [P, C].

        Savings, all exact:
        1. The prompt runs once, not once per row. Under the causal mask the P virtual tokens never see the
           text, so their hidden states are the same in every row: we run them alone as a [1, P, C] batch and
           hand their keys and values to the text as a KV cache (as in generation). The backward sends each
           row's gradient for those keys and values back, summed over the rows, through that single pass.
        2. Only the M positions that carry a target go through ln_f and the [C, V] head, the biggest matmul
           of GPT-2: a position without a target adds nothing to the loss, so its logits are never needed
           and its head gradient is exactly zero. With 8 targets in 84 positions that is ~10x less head work.
        3. Positions after the last target are dropped: under the causal mask they feed no target. In the last
           block, only the positions from the first target on go through the attention output and the MLP
           (the earlier ones still give their keys and values): nothing after that block reads the others.
        4. In block 0 the text's input is wte + wpe, frozen: its gradient is never needed, only the prompt
           keys' and values' (so no c_attn backward for the text there).
        `logits()` does none of this and concatenates the prompt in front; the tests check the two agree."""
        loss, cache = self.step_forward(prompt, input_ids, labels)
        return loss, (self.step_backward(cache) if need_grad else None)

    def step_forward(self, prompt, input_ids, labels):
        """The prompt-tuning forward with the savings of `loss_and_grad` -> (loss, StepCache)."""
        prompt = self.check_prompt(prompt).astype(self.dtype, copy=False)
        input_ids, labels = np.asarray(input_ids), np.asarray(labels)
        if labels.shape != input_ids.shape:
            raise TinyPromptError(f"labels {labels.shape} must have the shape of input_ids {input_ids.shape}")
        B, P = input_ids.shape[0], prompt.shape[0]
        b, p, target = self.targets(labels, P)
        text = p[p >= P] - P  # the targets in the text (p = P - 1, the last virtual token, can be one too)
        T, start = (int(text.max()) + 1, int(text.min())) if len(text) else (1, 0)
        input_ids = input_ids[:, :T]  # saving 3: nothing after the last target

        xp, prompt_caches, past = prompt[None], [], None  # P = 0 (no soft prompt): nothing to run
        if P:
            xp, prompt_caches = self.forward(self.embed(np.zeros((1, 0), np.int64), prompt))  # [1, P, C], once
            past = [(np.broadcast_to(k, (B, *k.shape[1:])), np.broadcast_to(v, (B, *v.shape[1:])))
                    for k, v in present(prompt_caches)]  # the same prompt keys/values for every row
        xt, text_caches = self.forward(self.embed(input_ids, start=P), past, start)  # [B, T - start, C]
        x = np.concatenate([np.broadcast_to(xp, (B, P, xp.shape[2])), xt], axis=1)  # [B, P + T - start, C]
        p = np.where(p < P, p, p - start)  # the targets' rows in x
        h, ln_f_cache = F.layer_norm_forward(x[b, p], **self.params["ln_f"], eps=self.config.layer_norm_epsilon)
        logits = matmul(h, self.wte.T)  # [M, C] -> [M, V], only where a target is
        loss, ce_cache = F.cross_entropy_forward(logits, target)
        return float(loss), StepCache(P, prompt_caches, text_caches, x.shape, b, p, ln_f_cache, ce_cache)

    def step_backward(self, cache):
        """StepCache -> d loss / d prompt [P, C]: `step_forward` read in reverse, each line under its twin.
        Every d* is an activation gradient: the frozen weights never get one."""
        # forward: loss = cross_entropy(logits, target)
        dlogits = F.cross_entropy_backward(cache.ce)  # [M, V]
        # forward: logits = h @ wte.T  ->  dh = dlogits @ wte
        dh = matmul(dlogits, self.wte)  # [M, V] -> [M, C]
        # forward: h = ln_f(x[b, p]); positions without a target get no gradient from the head
        dx = np.zeros(cache.x_shape, self.dtype)  # [B, P + T - start, C]
        dx[cache.b, cache.p] = F.layer_norm_backward(dh, cache.ln_f)  # (b, p) pairs are distinct: assignment
        # forward: x = cat(prompt pass broadcast to B rows, text pass); the text pass, in reverse
        P, dpresent = cache.P, []
        dxt = dx[:, P:]  # [B, T - start, C]
        for i in reversed(range(len(cache.text))):  # block 0 sends nothing to the text's input: saving 4
            block = self.params["h"][i]
            dxt, dpast = block_backward(dxt, cache.text[i], **block, n_head=self.config.n_head, need_dx=i > 0)
            dpresent.append((dpast[0].sum(axis=0, keepdims=True), dpast[1].sum(axis=0, keepdims=True)))
        # forward: the prompt pass ran once for all rows, so its gradients add up over the rows
        dxp = dx[:, :P].sum(axis=0, keepdims=True)  # [1, P, C]
        for block, block_cache, dkv in zip(reversed(self.params["h"]), reversed(cache.prompt), dpresent):
            dxp, _ = block_backward(dxp, block_cache, **block, n_head=self.config.n_head, dpresent=dkv)
        return F.embedding_backward(dxp, P)  # forward: x = prompt + wpe[:P];  [1, P, C] -> [P, C]

    def loss(self, prompt, input_ids, labels):
        """The loss alone (no backward)."""
        return self.loss_and_grad(prompt, input_ids, labels, need_grad=False)[0]
