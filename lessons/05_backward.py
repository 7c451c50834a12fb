# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
# %% [markdown]
# # Lesson 05: the backward pass: from the loss back to the soft prompt, op by op.
#
# ## What it teaches
# Prompt tuning trains the $P \times C$ numbers of the prompt and nothing else, so the backward pass needs one
# gradient: $\partial \ell / \partial\, \text{prompt}$, for the loss $\ell$. It is the forward pass read in
# reverse, one op at a time, and every op turns the gradient of its output into the gradient of its *input
# activation* -- for a linear layer $y = x W + b$ that is $dx = dy\, W^\top$, and never $dW = x^\top dy$,
# because $W$ is frozen. Each step below is checked by central finite differences in float64: nudge an input
# entry by $\pm\epsilon$, run the op forward, and compare $\big(f(x + \epsilon) - f(x - \epsilon)\big) / 2\epsilon$,
# weighted by the upstream gradient, with what the backward returned. The chain ends at
# $d\,\text{prompt} = dx[:, {:}P]$ summed over the rows, checked the same way against the whole model's loss.
#
# Two savings, both exact: no weight gradient is ever computed (the table of what that would have cost), and
# the [C, V] output head runs, forward and backward, only on the $M$ positions that carry a target (lesson 04):
# the other positions' logits would enter the loss multiplied by zero, and their gradient through the head is
# exactly zero.
#
# **Notation.** The upstream gradient $dy = \partial \ell / \partial y$ of the loss $\ell$ has the shape of
# $y$; each result has the shape of the op's input. $A B$ (or `A @ B` in the code) is a matrix product, over
# the last two axes and batched over any in front; $\odot$ (`*` in the code) is an element-wise product. On a
# [B, H, L, D] array, $k^\top$ swaps the **last two axes** only (`k.swapaxes(-1, -2)`, [B, H, D, L]): one
# transpose per row and head. Each derivation sits beside the code that implements and checks it, below; the
# code is `tinyprompt/layers.py`, the check `tinyprompt/gradcheck.py`.
#
# Try them yourself first: `lessons/exercises/` (`python lessons/exercises/check.py layer_norm_backward`).
#
# **The claim, measured:** every op's hand-derived gradient equals central finite differences (float64) within
# a relative 1e-6, and so does the whole chain from the loss to the prompt.
#
# ## What to look at
# - the table of checks, from the loss down to the prompt: each op's max relative difference between
#   our backward and finite differences (float64: expect 1e-7 or smaller). Every `compare` line reads
#   `name | allclose | max abs diff | max rel diff`: `allclose` is NumPy's `allclose(ours, reference, rtol,
#   atol)` at the tolerance stated beside the dtype; `max abs diff` the largest $|ours - ref|$ over the entries;
#   `max rel diff` that divided by the largest $|ref|$. In float64 a good relative value is 1e-7 or smaller
#   (finite differences with step 1e-6 carry an error of about that size themselves); in float32, 1e-4;
# - the agreement of this op-by-op walk with `model.loss_and_grad`, which takes a faster route;
# - the table of weight-gradient arrays and bytes that are *not* computed, and the head's saving;
# - lessons/out/05_backward.png: every check against its tolerance; what is never computed.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from common import compare, human_bytes, load, parse_args, report, save_figure, table

from tinyprompt import data, gpt2
from tinyprompt import layers as F
from tinyprompt.gradcheck import cmp, finite_difference, rel_error
from tinyprompt.prompt import init_prompt
from tinyprompt.weights import flatten, param_shapes

TEMPLATE = "Review: {input}\nSentiment:"
ROWS = [("a charming journey", " positive"), ("bleak and desperate", " negative")]
TOLERANCE = 1e-6  # the relative error the tests demand of float64 finite differences
checks = []  # (op, input shape, entries checked, max rel diff): the table and the figure


def check(op, f, x, dx, index, dy=None):
    """Finite differences of sum(f(x) * dy) at x[index] (the other entries held fixed) against our dx[index].
    A small slice keeps it fast: two forward evaluations per checked entry."""
    x = np.asarray(x, np.float64)

    def at(sub):
        y = x.copy()
        y[index] = sub
        return f(y)

    numeric = finite_difference(at, x[index], dy)
    assert np.any(numeric), f"{op}: the gradient is zero on the checked slice, which would prove nothing"
    _, line = cmp(op, dx[index], numeric, rtol=1e-6, quiet=True)
    checks.append((op, list(x.shape), numeric.size, rel_error(dx[index], numeric)))
    print(f"   {line}")

# %%
args = parse_args()
model32, tok = load(args)
t_start = time.perf_counter()
model = model32.astype(np.float64)  # a float64 copy: finite differences need the precision
c = model.config
H, eps, C, V = c.n_head, c.layer_norm_epsilon, c.n_embd, c.vocab_size
P = 3 if args.quick else 4
width = 3 if args.quick else 4  # channels per checked slice
examples = data.tokenize([(i, {"input": a, "output": b}) for i, (a, b) in enumerate(ROWS)], "pairs", tok,
                         template=TEMPLATE).examples
input_ids, labels = data.pad_batch(examples, tok.eos_id)  # [B, T]
prompt = init_prompt("vocab", P, model.wte, seed=0).astype(np.float64)  # [P, C]
B, T = input_ids.shape
L = P + T
print(f"\nbatch: B={B} rows of T={T} tokens after P={P} virtual tokens (L={L}), float64 copy of the model "
      f"made in {time.perf_counter() - t_start:.1f} s")


# %% [markdown]
# ## The forward pass, keeping what each backward needs
# The simple route: the prompt concatenated in front of every row (lesson 02), every block run on all
# $L = P + T$ positions, and the head and the loss on the $M$ scored positions only (lesson 04).

# %%
x = model.embed(input_ids, prompt)  # [B, L, C]
block_inputs, caches = [], []
for block in model.params["h"]:
    block_inputs.append(x)
    x, cache = gpt2.block_forward(x, **block, n_head=H, eps=eps)
    caches.append(cache)
b, p, target = model.targets(labels, P)  # the M scored positions (lesson 04)
M = len(b)
# the positions of the checked slices: the first virtual and the first text token, and the scored ones
# (in the last block, per-position ops get a gradient only where a target is)
pos = sorted({0, P, *p.tolist()})
ln_f = model.params["ln_f"]
h, ln_f_cache = F.layer_norm_forward(x[b, p], **ln_f, eps=eps)  # [M, C]
logits = h @ model.wte.T  # [M, V]
loss, ce_cache = F.cross_entropy_forward(logits, target)
print(f"loss = {float(loss):.6f} over M={M} scored tokens")
print(f"the walk below uses the readable ops of tinyprompt/layers.py; the model runs {gpt2.F.__name__}, so "
      "the 'ops vs block_*' lines compare the two\n")

# %% [markdown]
# ## 1. The loss and the head
# **Softmax + cross-entropy.** For logits $z$ [M, V] and targets $t_m$,
# $\ell = \frac{1}{M}\sum_m \big(\log \sum_v e^{z_{mv}} - z_{m t_m}\big)$. The derivative of the log-sum-exp
# is the softmax, so
# $$\frac{\partial \ell}{\partial z_{mv}} = \frac{1}{M}\big(\mathrm{softmax}(z_m)_v - [v = t_m]\big):$$
# the prediction minus the one-hot target, divided by the number of scored tokens.
#
# **Linear** (the head is one, $z = h\, W_{te}^\top$). For $y = x W + b$ with $x$ [N, in], $W$ [in, out]:
# $y_{nj} = \sum_i x_{ni} W_{ij} + b_j$, so $dx_{ni} = \sum_j dy_{nj} W_{ij}$, that is
# $$dx = dy\, W^\top \qquad [N, \text{out}] \cdot [\text{out}, \text{in}] \to [N, \text{in}],$$
# and never $dW = x^\top dy$: $W$ is frozen. For the head, $dh = dz\, W_{te}$.
#
# **Layer norm**, over the $C$ channels of one position. With the mean and the **biased** variance (divided
# by $C$, not $C - 1$, as in GPT-2 and torch)
# $$\mu = \frac{1}{C}\sum_j x_j, \qquad \sigma^2 = \frac{1}{C}\sum_j (x_j - \mu)^2, \qquad
# r = (\sigma^2 + \varepsilon)^{-1/2}, \qquad \hat x_i = (x_i - \mu)\, r, \qquad y_i = w_i \hat x_i + b_i,$$
# first $d\hat x = dy \odot w$. Then the Jacobian of $\hat x$. Since $\partial \mu / \partial x_j = 1/C$ and
# $\sum_i (x_i - \mu) = 0$, $\partial \sigma^2 / \partial x_j = \frac{2}{C}(x_j - \mu)$, so
# $$\frac{\partial r}{\partial x_j} = -\tfrac{1}{2}(\sigma^2 + \varepsilon)^{-3/2}\,\frac{2}{C}(x_j - \mu)
# = -\frac{r^2 \hat x_j}{C}, \qquad
# \frac{\partial \hat x_i}{\partial x_j} = r\Big(\delta_{ij} - \frac{1}{C}\Big) + (x_i - \mu)\frac{\partial r}{\partial x_j}
# = \frac{r}{C}\big(C\,\delta_{ij} - 1 - \hat x_i \hat x_j\big).$$
# The chain rule sums over the outputs $i$: $dx_j = \sum_i d\hat x_i\, \partial \hat x_i / \partial x_j$, hence
# $$dx_j = r\Big(d\hat x_j - \frac{1}{C}\sum_i d\hat x_i - \hat x_j\, \frac{1}{C}\sum_i d\hat x_i\, \hat x_i\Big)
# \qquad [N, C] \to [N, C].$$

# %%
print("1. the loss and the head")
dlogits = F.cross_entropy_backward(ce_cache)  # [M, V]: (softmax - onehot(target)) / M
cols = sorted({*target.tolist(), *np.argsort(-logits[0])[:width].tolist()})  # targets + top logits of row 0
check("cross_entropy", lambda z: F.cross_entropy_forward(z, target)[0], logits, dlogits, (slice(None), cols))
dh = dlogits @ model.wte  # forward: logits = h @ wte.T  ->  dh = dlogits @ wte   [M, V] -> [M, C]
check("head h @ wte.T", lambda v: v @ model.wte.T, h, dh, (slice(None), slice(0, width)), dlogits)
dxm = F.layer_norm_backward(dh, ln_f_cache)  # [M, C]
check("ln_f", lambda v: F.layer_norm_forward(v, **ln_f, eps=eps)[0], x[b, p], dxm, (slice(None), slice(0, width)), dh)
dx = np.zeros_like(x)  # [B, L, C]: the positions without a target get nothing from the head
dx[b, p] = dxm

# %% [markdown]
# ## 2. The last block, inside, in reverse order
# The block's forward, op by op: $h_1 = \mathrm{ln}_1(x)$; $[q\,|\,k\,|\,v] = h_1 W_{attn} + b$ ([B, L, 3C], cut
# into three [B, L, C] slices); each split into heads; attention; heads merged; $a = y_m W_{proj} + b$;
# $x_1 = x + a$; then $x_2 = x_1 + \mathrm{mlp}(\mathrm{ln}_2(x_1))$ with
# $\mathrm{mlp}(h) = \mathrm{gelu}(h W_{fc} + b) W_{proj} + b$. The backward reads it from the end.
#
# **Residual.** $y = x + f(x)$: $dx = dy + J_f^\top dy$. The gradient takes both paths and they add.
#
# **GELU** (tanh form), element-wise: $y = \tfrac{x}{2}(1 + \tanh u)$, $u = s\,(x + 0.044715\,x^3)$,
# $s = \sqrt{2/\pi}$. With $t = \tanh u$ and $\tanh' = 1 - \tanh^2$:
# $$dx = dy \odot \Big(\frac{1 + t}{2} + \frac{x}{2}\,(1 - t^2)\, s\,(1 + 3 \cdot 0.044715\, x^2)\Big).$$
#
# **Causal attention**, per row and head ($q, k, v$ [B, H, L, D]; $S, A$ [B, H, L, L]):
# $$S = \frac{q\, k^\top}{\sqrt D} \ (\text{masked: } -\infty \text{ above the diagonal}), \qquad
# A = \mathrm{softmax}_{\text{row}}(S), \qquad y = A\, v.$$
# From $y = A v$ (a matrix product): $dA = dy\, v^\top$ and $dv = A^\top dy$. Each row of $A$ is a softmax
# of the same row of $S$, whose Jacobian is $\partial A_{ij} / \partial S_{ij'} = A_{ij}([j = j'] - A_{ij'})$, so
# $$dS_{ij} = \sum_{j'} dA_{ij'}\, A_{ij'}\,([j' = j] - A_{ij}) = A_{ij}\Big(dA_{ij} - \sum_{j'} dA_{ij'} A_{ij'}\Big),
# \quad\text{i.e.}\quad dS = A \odot \big(dA - \mathrm{rowsum}(dA \odot A)\big).$$
# A masked entry has $A_{ij} = 0$, so $dS_{ij} = 0$ there: no gradient flows to a future position. Last,
# from $S = q k^\top / \sqrt D$: $dq = dS\, k / \sqrt D$ and $dk = dS^\top q / \sqrt D$ (again $^\top$ on the last two
# axes).
#
# **Splitting and merging heads** move numbers, they compute nothing. `split_heads` reshapes [B, L, C] to
# [B, L, H, D] and swaps axes 1 and 2 to [B, H, L, D]; `merge_heads` is its inverse. Each output entry is
# exactly one input entry (a permutation), so the Jacobian is a permutation matrix $\Pi$ and its transpose is the
# inverse permutation: the backward of `merge_heads` is `split_heads`, and the backward of `split_heads` is
# `merge_heads`.
#
# **The $q, k, v$ concatenation.** The forward cuts $[q\,|\,k\,|\,v]$ = `qkv[..., :C]`, `qkv[..., C:2C]`,
# `qkv[..., 2C:]`. A slice's gradient goes back to its own columns and is zero elsewhere; the three slices
# cover the columns once, so the three gradients concatenate:
# $d(qkv) = [\,dq\,|\,dk\,|\,dv\,]$ along the channel axis, each first merged back to [B, L, C].

# %%
print(f"\n2. the last block (block {c.n_layer - 1}), inside, in reverse order")
block, cache = model.params["h"][-1], caches[-1]
xin = block_inputs[-1]
h1, ln_1_cache = F.layer_norm_forward(xin, **block["ln_1"], eps=eps)  # the block's forward, op by op,
a, (q, k, v, att) = gpt2.attn_forward(h1, **block["attn"], n_head=H)  # so each op's input is at hand
ym = gpt2.merge_heads(att @ v)  # [B, L, C]: the attention output before attn.c_proj
x1 = xin + a
h2, ln_2_cache = F.layer_norm_forward(x1, **block["ln_2"], eps=eps)
u = F.linear_forward(h2, **block["mlp"]["c_fc"])  # [B, L, 4C]
g, gelu_cache = F.gelu_forward(u)
out = x1 + F.linear_forward(g, **block["mlp"]["c_proj"])
compare("ops vs block_forward", out, x)
sl = (slice(None), pos, slice(0, width))  # every row, the positions `pos`, k channels
dm = dx  # forward: out = x1 + m  ->  dm = dout, and dout also flows straight on to x1
dg = F.linear_backward(dm, block["mlp"]["c_proj"]["weight"])  # [B, L, C] -> [B, L, 4C]
check("mlp.c_proj", lambda z: F.linear_forward(z, **block["mlp"]["c_proj"]), g, dg, sl, dm)
du = F.gelu_backward(dg, gelu_cache)
check("gelu", lambda z: F.gelu_forward(z)[0], u, du, sl, dg)
dh2 = F.linear_backward(du, block["mlp"]["c_fc"]["weight"])  # [B, L, 4C] -> [B, L, C]
check("mlp.c_fc", lambda z: F.linear_forward(z, **block["mlp"]["c_fc"]), h2, dh2, sl, du)
dx1 = dx + F.layer_norm_backward(dh2, ln_2_cache)  # the straight path + the branch
check("ln_2 + residual 2", lambda z: z + gpt2.mlp_forward(F.layer_norm_forward(z, **block["ln_2"], eps=eps)[0],
                                                           **block["mlp"])[0], x1, dx1, sl, dx)
dym = F.linear_backward(dx1, block["attn"]["c_proj"]["weight"])  # [B, L, C]
check("attn.c_proj", lambda z: F.linear_forward(z, **block["attn"]["c_proj"]), ym, dym, sl, dx1)
dy_heads = gpt2.split_heads(dym, H)  # [B, H, L, D]
dq, dk, dv = F.attention_backward(dy_heads, (q, k, v, att))
hsl = (slice(None), slice(None), pos, slice(0, width))  # every row and head, `pos`, k of D channels
check("attention dq", lambda z: F.attention_forward(z, k, v)[0], q, dq, hsl, dy_heads)
check("attention dk", lambda z: F.attention_forward(q, z, v)[0], k, dk, hsl, dy_heads)
check("attention dv", lambda z: F.attention_forward(q, k, z)[0], v, dv, hsl, dy_heads)
dqkv = np.concatenate([gpt2.merge_heads(dq), gpt2.merge_heads(dk), gpt2.merge_heads(dv)], axis=-1)  # [B, L, 3C]
dh1 = F.linear_backward(dqkv, block["attn"]["c_attn"]["weight"])  # [B, L, 3C] -> [B, L, C]
check("attn.c_attn", lambda z: F.linear_forward(z, **block["attn"]["c_attn"]), h1, dh1, sl, dqkv)
dxin = dx1 + F.layer_norm_backward(dh1, ln_1_cache)  # residual 1: straight path + attention branch
check("ln_1 + residual 1", lambda z: z + gpt2.attn_forward(F.layer_norm_forward(z, **block["ln_1"], eps=eps)[0],
                                                           **block["attn"], n_head=H)[0], xin, dxin, sl, dx1)
compare("ops vs block_backward", dxin, gpt2.block_backward(dx, cache, **block, n_head=H)[0])

# %% [markdown]
# ## 3. The other blocks
# Every block is the same function of its input, so its backward is the same chain as above;
# `gpt2.block_backward` runs it (with the faster kernels) and each block is checked as a whole.

# %%
others = f"blocks {c.n_layer - 2} down to 0, each" if c.n_layer > 2 else "block 0"
print(f"\n3. the other {others} as a whole (block_backward)")
dx = dxin
for i in range(c.n_layer - 2, -1, -1):
    block = model.params["h"][i]
    dnext = dx
    dx, _ = gpt2.block_backward(dnext, caches[i], **block, n_head=H)
    # a block treats the rows independently: checking row 0 alone halves the cost of the check
    check(f"block {i}", lambda z, blk=block: gpt2.block_forward(z, **blk, n_head=H, eps=eps)[0],
          block_inputs[i][:1], dx[:1], (slice(None), pos, slice(0, 2)), dnext[:1])

# %% [markdown]
# ## 4. The embedding and the concatenation
# $x_b = \mathrm{cat}(\text{prompt}, W_{te}[\text{ids}_b]) + W_{pe}[{:}L]$, so $x_{b,p} = \text{prompt}_p + W_{pe,p}$ for
# $p < P$, in every row $b$. Each prompt row is used $B$ times, and the gradients of its uses add:
# $$d\,\text{prompt}_p = \sum_b dx_{b,p}, \qquad d\,\text{prompt} = dx[:, {:}P].\mathrm{sum}(0)\quad [P, C].$$
# The text's slice $dx[:, P{:}]$ would go to $W_{te}$ and $W_{pe}$, which are frozen: it is dropped.

# %%
print("\n4. the embedding: x[:, :P] = prompt in every row, so dprompt = dx[:, :P].sum(rows)")
dprompt = F.embedding_backward(dx, P)  # [B, L, C] -> [P, C]
check("embedding -> prompt", lambda z: model.embed(input_ids, z), prompt, dprompt, (slice(None), slice(0, width)), dx)

# %% [markdown]
# ## 5. The whole chain
# The same gradient by finite differences of the model's loss itself, and by `model.loss_and_grad`, the route
# training uses.

# %%
print("\n5. the whole chain: dprompt against finite differences of the model's loss, and model.loss_and_grad")
_, dprompt_model = model.loss_and_grad(prompt, input_ids, labels)
check("whole model -> prompt", lambda z: model.loss(z, input_ids, labels), prompt, dprompt_model,
      (slice(None), slice(0, 2)))
compare("walk vs loss_and_grad", dprompt, dprompt_model)
print(f"   (loss_and_grad runs the {P} virtual tokens once for the batch, not once per row -- they never see "
      f"the text -- and sends the rows' gradients back through that single pass; the two routes agree)")

print("\n   the checks, from the loss back to the prompt:")
table(["op", "input shape", "entries checked", "max rel diff", f"< {TOLERANCE:g}"],
      [(op, shape, n, f"{err:.1e}", "yes" if err < TOLERANCE else "NO") for op, shape, n, err in checks])

# %% [markdown]
# The figure's first panel draws every check as a point on a log axis: how far each derived gradient is from
# finite differences, against the float64 tolerance.

# %%
fig, panels = plt.subplot_mosaic([["check", "weights"], ["check", "head"]], figsize=(22, 11),
                                 gridspec_kw={"width_ratios": [1, 1.1]})
ax = panels["check"]
errs = np.array([max(e, 1e-16) for *_, e in checks])
ax.scatter(errs, range(len(checks)), s=60, color=["C2" if e < TOLERANCE else "C3" for e in errs], zorder=3,
           label="max relative difference (a point: on a log axis a bar's length would mean nothing)")
ax.grid(axis="x", which="both", alpha=0.3)
ax.axvline(TOLERANCE, color="crimson", ls="--", label=f"tolerance {TOLERANCE:g} (float64)")
ax.set_xscale("log")
ax.set_yticks(range(len(checks)), [f"{op}  ({n} entries)" for op, _, n, _ in checks])
ax.invert_yaxis()
ax.set_xlabel("max |ours - finite differences| / max |finite differences|  (log scale)")
ax.set_title(f"the claim: each backward op against central finite differences, loss (top) to prompt "
             f"(bottom)\nfloat64, B={B}, L={L}")
ax.set_xlim(min(errs.min() / 10, 1e-12), TOLERANCE * 100)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=9)  # below the axes: off the data

# %% [markdown]
# ## 6. What is not computed: the weight gradients
# Full fine-tuning would compute $dW = x^\top dy$ for every linear layer (and gradients for every layer-norm
# weight and both embeddings), and keep AdamW's two moment arrays for each. Prompt tuning computes none of them.

# %%
print("\n6. what full fine-tuning would compute and prompt tuning does not: a gradient for every weight")
groups = {}
flat = flatten(model32.params)
for key in param_shapes(c):  # the model's order: wte, wpe, the blocks' weights, ln_f
    w = flat[key]
    name = key.split(".", 2)[-1] if key.startswith("h.") else key  # h.3.attn.c_attn.weight -> attn.c_attn.weight
    shape, count, total = groups.get(name, (w.shape, 0, 0))
    groups[name] = (shape, count + 1, total + w.size)
itemsize = np.dtype(np.float32).itemsize
rows = [(name, list(shape), count, f"{total:,}", human_bytes(total * itemsize))
        for name, (shape, count, total) in groups.items()]
n_weights = sum(total for _, _, total in groups.values())
rows.append(("all weights", "", sum(n for _, n, _ in groups.values()), f"{n_weights:,}",
             human_bytes(n_weights * itemsize)))
rows.append(("dprompt (what we compute)", [P, C], 1, f"{P * C:,}", human_bytes(P * C * itemsize)))
table(["gradient of", "shape", "arrays", "numbers", "float32 bytes"], rows)
print(f"   {n_weights / (P * C):,.0f}x more numbers than dprompt; AdamW would also keep 2 more arrays of each "
      f"size (m and v): {human_bytes(3 * n_weights * itemsize)} against {human_bytes(3 * P * C * itemsize)}")
linear = 2 * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) * c.n_layer  # FLOPs of x.T @ dy per position
print(f"   the skipped dW = x.T @ dy matmuls: {linear * B * L / 1e9:.3f} GFLOP for this batch's {B * L} positions "
      f"in the blocks, plus dwte = dlogits.T @ h: {2 * M * C * V / 1e9:.3f} GFLOP in the head")

# %% [markdown]
# ## 7. The head only where a target is
# A position without a target has $dz = 0$ in its row, so $dh = dz\, W_{te}$ is zero there: computing the head
# on those rows, forward or backward, is work multiplied by zero.

# %%
print(f"\n7. the head only where a target is: M={M} rows instead of B * L = {B * L}")
x32, _ = model32.forward(model32.embed(input_ids, prompt))
h_all, _ = F.layer_norm_forward(x32, **model32.params["ln_f"], eps=eps)  # [B, L, C]
repeats = 2 if args.quick else 5
timing = {}
for name, rows_h in (("all", h_all), ("targets", h_all[b, p])):
    t0 = time.perf_counter()
    for _ in range(repeats):
        _ = rows_h @ model32.wte.T
    timing[name] = (time.perf_counter() - t0) / repeats
dlogits_all = np.zeros((B, L, V))  # the head's backward on every position: zero where there is no target
dlogits_all[b, p] = dlogits
dh_all = dlogits_all @ model.wte  # [B, L, C]
nonzero = int(np.any(dh_all != 0, axis=-1).sum())
print(f"   backward through the full head: {nonzero} of {B * L} rows of dh are nonzero (the M scored ones)")
compare("dh, M rows vs B*L rows", dh, dh_all[b, p])
head = {"forward  ln_f(x) @ wte.T": 2 * C * V, "backward dlogits @ wte": 2 * C * V}
table(["head matmul", f"B*L={B * L} rows, GFLOP", f"M={M} rows, GFLOP", "saved"],
      [(name, f"{f * B * L / 1e9:.3f}", f"{f * M / 1e9:.3f}", f"{1 - M / (B * L):.0%}")
       for name, f in head.items()])
print(f"   measured (float32 forward): {timing['all'] * 1e3:.1f} ms for {B * L} rows, "
      f"{timing['targets'] * 1e3:.1f} ms for {M}; logits kept: {human_bytes(B * L * V * itemsize)} -> "
      f"{human_bytes(M * V * itemsize)}")

ax1, ax2 = panels["weights"], panels["head"]
names = [*groups, "dprompt"]
sizes = [total * itemsize for _, _, total in groups.values()] + [P * C * itemsize]
ax1.scatter(sizes, range(len(names)), s=60, color=["grey"] * len(groups) + ["C2"], zorder=3)
ax1.grid(axis="x", which="both", alpha=0.3)
ax1.set_xscale("log")
ax1.set_yticks(range(len(names)), [f"{n}, all {groups[n][1]} blocks" if n in groups and groups[n][1] > 1
                                   else n for n in names])
ax1.invert_yaxis()
ax1.set_xlabel("float32 bytes of the gradient (log scale)")
ax1.set_title(f"weight gradients never computed (grey, {human_bytes(n_weights * itemsize)} in all)\n"
              f"vs the one gradient prompt tuning needs (green, {human_bytes(P * C * itemsize)})")
width = 0.35
xs = np.arange(2)
ax2.bar(xs - width / 2, [2 * C * V * B * L / 1e9] * 2, width, label=f"all B*L = {B * L} positions")
ax2.bar(xs + width / 2, [2 * C * V * M / 1e9] * 2, width, label=f"only the M = {M} scored positions")
ax2.set_xticks(xs, ["forward\nln_f(x) @ wte.T", "backward\ndlogits @ wte"])
ax2.set_ylabel("GFLOP for this batch")
ax2.set_ylim(0, 1.3 * 2 * C * V * B * L / 1e9)
ax2.set_title(f"the [C, V] = [{C}, {V}] head: {1 - M / (B * L):.0%} of its work skipped, exactly")
ax2.legend()
fig.suptitle(f"Lesson 05: the derived backward pass, checked, and what it does not compute ({model.name_or_path})")
fig.tight_layout()
save_figure(fig, "05_backward")
print(f"\ntotal time {time.perf_counter() - t_start:.1f} s")
worst = max(err for *_, err in checks)
report("05", f"every derived gradient ({len(checks)} ops, loss to prompt) matches finite differences "
       f"within {TOLERANCE:g} relative", worst < TOLERANCE, worst_rel_diff=worst, ops=len(checks))
