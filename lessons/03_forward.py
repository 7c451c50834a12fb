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
# # Lesson 03: the forward pass, one block at a time.
#
# ## What it teaches
# After the embedding (lesson 02) the [B, L, C] array goes through n_layer identical blocks. Each block is
# pre-norm with two residual branches:
#       x = x + attn(ln_1(x))     # every position mixes in the values of the positions it may see
#       x = x + mlp(ln_2(x))      # every position alone: C -> 4C -> GELU -> C
# The array keeps its shape [B, L, C] from block to block (the "residual stream"); the blocks only add
# to it. At the end ln_f normalizes each position and the output head, tied to the input embedding, turns
# it into one score per vocabulary entry: logits = ln_f(x) @ wte.T, [B, L, C] -> [B, L, V].
#
# ## What to look at
# - the shapes inside block 0, op by op, and the check that the ops equal `block_forward`;
# - the table of hidden-state norms per layer, for the virtual tokens and the text tokens, and the size
#   of what each block adds;
# - the check that the step-by-step result equals `model.logits` (within float32 rounding: the ops sum in
#   another order than the model's fused kernels, so the last digits differ; the check states its tolerance);
# - lessons/out/03_hidden_norms.png: the norm of every position after every block (the residual stream).

# %%
import time
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
from common import compare, load, parse_args, save_figure, show, table
from matplotlib.colors import LogNorm

from tinyprompt import gpt2
from tinyprompt import layers as F
from tinyprompt.prompt import init_prompt

TEXT = "I want you to act as a logistician."
P = 8
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}  # float32 results of differently ordered sums agree to about this

# %%
args = parse_args()
model, tok = load(args)
c = model.config
H, eps = c.n_head, c.layer_norm_epsilon
ids = np.array([tok.encode(TEXT)])  # [1, T]
prompt = init_prompt("vocab", P, model.wte, seed=0)  # [P, C]: P rows of wte, a typical starting prompt
x = model.embed(ids, prompt)  # [B, L, C], lesson 02
B, L, C = x.shape
print(f"\n{TEXT!r} with P={P} virtual tokens in front: x {list(x.shape)} [B, L, C], "
      f"H={H} heads of D={C // H} channels")

# %% [markdown]
# ## 1. inside block 0, op by op (the functions block_forward calls, in its order)

# %%
block = model.params["h"][0]
h, _ = F.layer_norm_forward(x, **block["ln_1"], eps=eps)
a, (q, _, _, att) = gpt2.attn_forward(h, **block["attn"], n_head=H)
x1 = x + a
h2, _ = F.layer_norm_forward(x1, **block["ln_2"], eps=eps)
fc, _ = F.gelu_forward(F.linear_forward(h2, **block["mlp"]["c_fc"]))
m, _ = gpt2.mlp_forward(h2, **block["mlp"])
x2 = x1 + m
print("\n1. block 0, op by op")
table(["op", "computes", "shape"], [
    ("ln_1", "layer_norm(x): each position to mean 0, variance 1, then * weight + bias", list(h.shape)),
    ("attn.c_attn", "h @ W [C, 3C] + b, split into q, k, v", f"3 x {list(q.shape)} [B, H, L, D]"),
    ("attention", "softmax(q k^T / sqrt(D), causal) over keys", f"{list(att.shape)} [B, H, L, L]"),
    ("", "att @ v, heads merged back", [B, L, C]),
    ("attn.c_proj", "@ W [C, C] + b", list(a.shape)),
    ("residual 1", "x + attn(ln_1(x))", list(x1.shape)),
    ("ln_2", "layer_norm", list(h2.shape)),
    ("mlp.c_fc + gelu", "gelu(h @ W [C, 4C] + b)", list(fc.shape)),
    ("mlp.c_proj", "@ W [4C, C] + b", list(m.shape)),
    ("residual 2", "x + mlp(ln_2(x))", list(x2.shape))])
compare("ops vs block_forward", x2, gpt2.block_forward(x, **block, n_head=H, eps=eps)[0], **FLOAT32)
print(f"   (the ops above are tinyprompt/layers.py's; block_forward runs {gpt2.F.__name__}: in float32 the "
      "two round differently)")
size = {name: float(np.linalg.norm(v[0], axis=-1).mean()) for name, v in
        (("x (embedding)", x), ("ln_1(x)", h), ("attn(ln_1(x))", a), ("ln_2(x1)", h2), ("mlp(ln_2(x1))", m))}
print("   mean norm per position: " + ", ".join(f"|{name}| {v:.2f}" for name, v in size.items())
      + f"; sqrt(C) = {np.sqrt(C):.1f}")

# %% [markdown]
# ## 2. every block, keeping the hidden states
# **Why the norm jumps in block 0.** The last line of step 1 shows it. A layer norm rescales each position to
# mean 0 and variance 1 over its $C$ channels, a vector of norm about $\sqrt{C}$ (then times its weight), *whatever
# the size of its input*. So each branch of block 0 reads a vector of norm ~$\sqrt{C}$, not the embedding's
# small one, and writes back an update whose size is set by its weights: many times the embedding's norm. The
# residual stream therefore jumps in block 0 from the embedding's scale to the blocks' scale. Later blocks add
# updates of a similar size to a stream that is already that large, so the norm grows slowly from there, and
# `ln_f` brings every position back to one scale before the head. The line shows which branch does it: in
# tiny-pretrained block 0's MLP writes an update about 20x the embedding's norm, its attention hardly anything.
# Block 0's MLP works as a second, larger embedding, as it is known to in real GPT-2; the embeddings
# themselves stay small because the head is tied to them and trained with weight decay (lesson 01).

# %%
states, t0 = [x], time.perf_counter()
for block in model.params["h"]:
    x, _ = gpt2.block_forward(x, **block, n_head=H, eps=eps)  # [B, L, C] -> [B, L, C]
    states.append(x)
t_blocks = time.perf_counter() - t0
final, _ = F.layer_norm_forward(x, **model.params["ln_f"], eps=eps)
t0 = time.perf_counter()
logits = final @ model.wte.T  # [B, L, C] @ [C, V] -> [B, L, V]: the head, tied to the input embedding
t_head = time.perf_counter() - t0
print(f"\n2. {c.n_layer} blocks in {t_blocks * 1e3:.1f} ms, the head [C, V] = [{C}, {c.vocab_size}] "
      f"in {t_head * 1e3:.1f} ms")
norms = np.array([np.linalg.norm(s[0], axis=-1) for s in [*states, final]])  # [n_layer + 2, L]
updates = [np.linalg.norm(after[0] - before[0], axis=-1).mean() for before, after in pairwise(states)]
names = ["embed"] + [f"block {i}" for i in range(c.n_layer)] + ["ln_f"]
rows = []
for i, name in enumerate(names):
    top = int(norms[i].argmax())
    rows.append((name, f"{norms[i, :P].mean():.2f}", f"{norms[i, P:].mean():.2f}",
                 f"{norms[i, top]:.2f} at {top} ({'v' + str(top) if top < P else 'text'})",
                 f"{updates[i - 1]:.2f}" if 1 <= i <= c.n_layer else ""))
table(["after", "mean |x| virtual", "mean |x| text", "max |x| (position)", "mean |block update|"], rows)

# %% [markdown]
# ## 3. the same thing in one call
# The step-by-step logits and `model.logits` run the same math with differently ordered float32 sums (the
# model uses fused kernels), so they agree to float32 rounding, about 1e-5 here, not bit for bit: the check
# states its tolerance (`FLOAT32`, rtol 1e-4, atol 1e-5).

# %%
print("\n3. step by step vs one call")
compare("logits vs model.logits", logits, model.logits(ids, prompt), **FLOAT32)
p = np.exp(logits[0, -1] - logits[0, -1].max())
p /= p.sum()
top = np.argsort(-p)[:5]
print(f"   next token after the text: {', '.join(f'{tok.decode([i])!r} {p[i]:.3g}' for i in top)}")

labels = [f"v{i}" for i in range(P)] + [show(tok.decode([i])) for i in ids[0]]
n = c.n_layer + 1  # embed and the blocks; ln_f's output (normalized, another scale) is in the table only
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 5.5), gridspec_kw={"width_ratios": [1.3, 1], "wspace": 0.3})
im = ax1.imshow(norms[:n], aspect="auto", cmap="magma", norm=LogNorm())
ax1.axvline(P - 0.5, color="cyan", lw=2, label=f"end of the P={P} virtual tokens")
ax1.set_xticks(range(L), labels, rotation=90, fontsize=8)
ax1.set_yticks(range(n), names[:n], fontsize=8 if n > 8 else 10)
ax1.set_xlabel("position")
ax1.set_ylabel("hidden state after")
ax1.set_title("|x| of every position after every layer (log colour)")
ax1.legend(loc="lower right", fontsize=8)
bar = fig.colorbar(im, ax=ax1, label="|x|, L2 norm over the C channels")
bar.ax.yaxis.set_major_formatter("{x:g}")
bar.ax.yaxis.set_minor_formatter("{x:.2g}")
layer = np.arange(n)
ax2.plot(layer, norms[:n, :P].mean(1), "o-", label="mean |x|, virtual tokens")
ax2.plot(layer, norms[:n, P:].mean(1), "s-", label="mean |x|, text tokens")
ax2.plot(layer[1:], updates, "^--", label="mean |block(x) - x|, what the block adds")
ax2.set_yscale("log")
ax2.yaxis.set_major_formatter("{x:g}")
ax2.yaxis.set_minor_formatter("{x:g}")
ax2.set_xticks(layer, names[:n], rotation=45, ha="right")
ax2.set_ylabel("L2 norm (log scale)")
ax2.set_title("mean norms of the residual stream, layer by layer")
ax2.legend()
fig.suptitle(f"Lesson 03: hidden-state norms through the forward pass ({model.name_or_path})")
save_figure(fig, "03_hidden_norms")
