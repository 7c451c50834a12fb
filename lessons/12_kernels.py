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
# # Lesson 12: vectorization in the computing sense: one attention computation, three ways.
#
# ## What it teaches
# In lesson 01, "vectorization" turned tokens into vectors. Here the word means something else: handing a
# whole array operation to compiled code, instead of looping over numbers in Python. The computation is the
# causal self-attention of block 0, y = softmax(mask(q k^T / sqrt(D))) v, on the same q, k, v, three ways:
# - a naive Python loop: for each row, head, query, key and channel, one multiply-add at a time. This is the
#   definition as written, run by the interpreter one number at a time;
# - NumPy (layers.attention_forward): four array expressions. The two matmuls go to BLAS; the scale, the
#   mask and the softmax are whole-array operations, each one a pass over the [B, H, L, L] scores;
# - Numba (kernels.attention_forward, what the model runs): the same BLAS matmuls, with the scale, the mask
#   and the softmax fused into one compiled loop per row, which skips the masked half.
# Numba compiles a function the first time it is called ("just in time"). With cache=True it also writes
# the machine code to disk, so a later process loads it instead of compiling again. The compile time is
# reported apart from the run time.
#
# ## What to look at
# - the checks that the three agree (cmp, float32 tolerances);
# - the timings at several sequence lengths L, and the ratios between them;
# - the compile time against the run time it saves;
# - lessons/out/12_kernels.png.

# %%
import math

import matplotlib.pyplot as plt
import numba
import numpy as np
from common import DATA, compare, load, parse_args, read_rows, save_figure, table, timed

from tinyprompt import gpt2, kernels, layers

FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}  # float32 results of differently ordered sums agree to about this


def attention_naive(q, k, v):
    """q, k, v [B, H, L, D] -> y [B, H, L, D], one Python float at a time: the definition, no arrays."""
    B, H, L, D = q.shape
    q, k, v = q.tolist(), k.tolist(), v.tolist()  # nested lists of Python floats
    scale = 1.0 / math.sqrt(D)
    y = [[[[0.0] * D for _ in range(L)] for _ in range(H)] for _ in range(B)]
    for b in range(B):
        for h in range(H):
            for i in range(L):  # query i sees keys 0..i (the causal mask)
                scores = []
                for j in range(i + 1):
                    s = 0.0
                    for d in range(D):
                        s += q[b][h][i][d] * k[b][h][j][d]
                    scores.append(s * scale)
                top = max(scores)
                e = [math.exp(s - top) for s in scores]
                total = sum(e)
                for d in range(D):
                    acc = 0.0
                    for j in range(i + 1):
                        acc += e[j] / total * v[b][h][j][d]
                    y[b][h][i][d] = acc
    return np.array(y)

# %%
args = parse_args()
model, tok = load(args)
H, C = model.config.n_head, model.config.n_embd
lengths, naive_up_to, repeats = ([16, 32, 64, 128], 64, 5) if args.quick else ([32, 64, 128, 256, 512, 1024], 128, 10)
lengths = [n for n in lengths if n <= model.config.n_positions]
text = " ".join(r["prompt"] for r in read_rows(DATA / "awesome-chatgpt-prompts" / "prompts.csv"))
all_ids = tok.encode(text)[: max(lengths)]

def qkv(L):
    """Block 0's q, k, v [1, H, L, D] for the first L tokens, computed with the NumPy twins (so that the
    first call of the Numba attention kernel is the one timed below)."""
    block = model.params["h"][0]
    x, _ = layers.layer_norm_forward(model.embed(np.array([all_ids[:L]])), **block["ln_1"])
    parts = np.split(layers.linear_forward(x, **block["attn"]["c_attn"]), 3, axis=-1)  # 3 x [1, L, C]
    return [np.ascontiguousarray(gpt2.split_heads(t, H)) for t in parts]  # 3 x [1, H, L, D]

# %% [markdown]
# ## 1. the first call of the Numba kernel in this process, and compiling it from scratch

# %%
q, k, v = qkv(lengths[0])
# kernels.kernel wraps each function in two numba dispatchers: `parallel` (big arrays) and `serial`
dispatcher = kernels._causal_softmax.parallel
t_first, _ = timed(lambda: kernels.attention_forward(q, k, v), 1)
loaded = sum(dispatcher.stats.cache_hits.values())
fresh = numba.njit(parallel=True, fastmath=kernels.FASTMATH, error_model="numpy")(dispatcher.py_func)
scores = q @ k.swapaxes(-1, -2)  # [1, H, L, L]: the fused kernel's input
t_compile, _ = timed(lambda: fresh(scores.copy(), np.float32(1 / math.sqrt(C // H))), 1)
t_run, _ = timed(lambda: fresh(scores.copy(), np.float32(1 / math.sqrt(C // H))), repeats)
print(f"\n1. Numba compiles on the first call: H={H} heads, D={C // H}")
table(["what", "seconds"], [
    (f"first kernels.attention_forward call here ({'loaded from numba cache' if loaded else 'compiled'})",
     f"{t_first:.3f}"),
    ("compiling the softmax kernel from scratch (a fresh njit, no cache), + one run", f"{t_compile:.3f}"),
    (f"that kernel, compiled, on L={lengths[0]}", f"{t_run:.6f}")])
print(f"   numba's on-disk cache: {dispatcher.stats.cache_path}")

# %% [markdown]
# ## 2. the three ways, at each length

# %%
print(f"\n2. causal attention of block 0 on the first L tokens of the role prompts; median of {repeats} runs "
      f"(the Python loop: 1 run, up to L={naive_up_to})")
results = []
for L in lengths:
    q, k, v = qkv(L)
    t_numpy, (y_numpy, _) = timed(lambda q=q, k=k, v=v: layers.attention_forward(q, k, v), repeats)
    t_numba, (y_numba, _) = timed(lambda q=q, k=k, v=v: kernels.attention_forward(q, k, v), repeats)
    ok = compare(f"numba vs numpy, L={L}", y_numba, y_numpy, **FLOAT32)
    t_naive = None
    if L <= naive_up_to:
        t_naive, y_naive = timed(lambda q=q, k=k, v=v: attention_naive(q, k, v), 1)
        ok &= compare(f"python vs numpy, L={L}", y_naive, y_numpy, **FLOAT32)
    results.append((L, t_naive, t_numpy, t_numba, ok))
macs = {L: H * L * (L + 1) // 2 * (C // H) * 2 for L in lengths}  # q.k and att.v over the visible keys
table(["L", "multiply-adds", "python loop ms", "numpy ms", "numba ms", "python / numpy", "numpy / numba", "agree"],
      [(L, f"{macs[L]:,}", "-" if a is None else f"{a * 1e3:.1f}", f"{b * 1e3:.3f}", f"{c * 1e3:.3f}",
        "-" if a is None else f"{a / b:,.0f}x", f"{b / c:.2f}x", ok) for L, a, b, c, ok in results])
L, _, t_numpy, t_numba, _ = results[-1]
saved = t_numpy - t_numba
print(f"   at L={L}: the compile ({t_compile:.2f} s) is paid back after "
      + (f"{t_compile / saved:,.0f} calls (one per block per forward pass)" if saved > 0
         else "no number of calls: numba was not faster here"))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1.6, 1]})
x = np.arange(len(results))
for i, (name, col) in enumerate((("Python loop", 1), ("NumPy (layers)", 2), ("Numba (kernels)", 3))):
    times = [np.nan if r[col] is None else r[col] * 1e3 for r in results]
    ax1.bar(x + (i - 1) * 0.27, times, width=0.27, label=name, color=f"C{i}")
ax1.set_yscale("log")
ax1.set_xticks(x, [str(r[0]) for r in results])
ax1.set_xlabel(f"sequence length L (block 0's attention, H={H}, D={C // H})")
ax1.set_ylabel(f"milliseconds per call (log scale), median of {repeats}")
ax1.set_title("one causal attention, three ways (the Python loop only up to "
              f"L={naive_up_to})")
ax1.legend()
ax1.grid(axis="y", alpha=0.3)
once = [("compile from scratch\n(no cache)", t_compile),
        (f"first call here\n({'load from cache' if loaded else 'compile'})", t_first),
        (f"one call, L={L}\n(compiled)", t_numba)]
bars = ax2.bar(range(3), [s * 1e3 for _, s in once], color=["C3", "C1", "C2"])
ax2.bar_label(bars, labels=[f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.3g} ms" for _, s in once])
ax2.set_yscale("log")
ax2.set_xticks(range(3), [n for n, _ in once])
ax2.set_ylabel("milliseconds (log scale)")
ax2.set_title("Numba: one-time costs vs one call")
fig.suptitle(f"Lesson 12: a Python loop, NumPy and Numba on the same attention ({model.name_or_path})")
save_figure(fig, "12_kernels")
