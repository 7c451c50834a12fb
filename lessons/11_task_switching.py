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
# # Lesson 11: task switching: two tuned prompts, one frozen model.
#
# ## What it teaches
# Prompt tuning never changes the model, so one copy of the weights serves every task. A task is P x C
# numbers in front of the input: kilobytes, where the model is hundreds of megabytes. Switching tasks means
# passing another small array, and a batch can mix tasks. `model.logits(ids, prompts)` takes a [B, P, C]
# prompt, one per row, and each row attends to its own virtual tokens only. The lesson tunes two prompts on
# different tasks, sentiment (SST-2) and addition (data/toy), then serves requests of both kinds in two
# ways: one request at a time, switching the prompt each time, and all of them in one mixed batch. Then it
# times what a switch costs against loading a model.
#
# The claim, measured: in one mixed batch every row gets the logits it gets alone with its own prompt (each
# column different), and each task is answered right at least MARGIN more often with its own prompt than with
# the other task's (each column right; the control: the same model and rows, the prompts swapped). Sentiment
# is scored by rank classification of its two labels, so chance is about 50%; addition by the most likely next
# token, on sums its prompt never trained on.
#
# ## What to look at
# - the answers: each request with its own task's prompt, with the other task's, and in the mixed batch;
# - the check that the mixed batch gives every row the logits it gets alone;
# - the timings (median of several runs) and the file sizes. Timings depend on the machine and its load:
#   on a busy machine, BLAS threads that wait for a core can make a small batch slower than its rows one by
#   one (OPENBLAS_NUM_THREADS=1 avoids that);
# - lessons/out/11_task_switching.png.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from common import (
    DATA,
    OUT,
    compare,
    human_bytes,
    load,
    parse_args,
    read_rows,
    report,
    save_figure,
    table,
    timed,
    tune,
    write_rows,
)

import tinyprompt
from tinyprompt.hub import find_weights
from tinyprompt.prompt import WEIGHTS_NAME, load_prompt

P, LR, SEED = 8, 0.03, 0  # one P for both tasks: a mixed batch stacks the prompts into [B, P, C]
SENTIMENT = {"input_column": "text", "output_column": "label", "template": "Review: {input}\nSentiment:",
             "label_words": "0= negative,1= positive"}
LABELS = [" negative", " positive"]
SHOWN = 12  # requests printed; every one is scored
MARGIN = 0.3  # accuracy points, own prompt over swapped
FLOAT32 = {"rtol": 1e-4, "atol": 1e-4}  # float32 logits of a batch and of one row agree to about this


def answer(task, logits, tok):
    """A row's answer from its last position's logits [V]: the better label for sentiment (rank
    classification of one-token labels), the most likely next token for addition."""
    if task == "sentiment":
        return LABELS[int(np.argmax([logits[tok.encode(w)[0]] for w in LABELS]))]
    return tok.decode([int(np.argmax(logits))])

# %%
args = parse_args()
model, tok = load(args)
eos = tok.eos_id
n_sst, n_add, per_task, epochs, repeats = (160, 60, 24, 2, 5) if args.quick else (400, 60, 40, 3, 3)
add_epochs = 10 * epochs  # addition rows are a few tokens and few: more passes, at a fraction of the cost
rng = np.random.default_rng(SEED)
sst = read_rows(DATA / "sst2" / "train.tsv")
sst_path = write_rows([sst[i] for i in sorted(rng.permutation(len(sst))[:n_sst])], "11_sentiment.tsv")
add = read_rows(DATA / "toy" / "addition.jsonl")
order = rng.permutation(len(add))
add_path = write_rows([add[i] for i in sorted(order[:n_add])], "11_addition.jsonl")

# %% [markdown]
# ## 1. two prompts, tuned on two tasks, with the same frozen model

# %%
print(f"\n1. tuning two prompts of P={P} on the same frozen model: sentiment ({n_sst} SST-2 rows) and "
      f"addition ({n_add} rows of data/toy/addition.jsonl); AdamW lr {LR}, {epochs} and {add_epochs} epochs")
settings = {"num_virtual_tokens": P, "lr": LR, "batch_size": 8, "seed": SEED, "quiet": True}
tune(model, tok, "11_sentiment", data=str(sst_path), epochs=epochs, **SENTIMENT, **settings)
tune(model, tok, "11_addition", data=str(add_path), epochs=add_epochs, init="vocab", **settings)
runs = {"sentiment": OUT / "11_sentiment", "addition": OUT / "11_addition"}
seconds_prompt, _ = timed(lambda: load_prompt(runs["addition"], model.config.n_embd), repeats)
prompts = {task: load_prompt(path, model.config.n_embd)[0] for task, path in runs.items()}  # [P, C] each

# %% [markdown]
# ## 2. requests of both tasks, interleaved: dev reviews, and sums the addition prompt never trained on

# %%
dev = read_rows(DATA / "sst2" / "dev.tsv")[:per_task]
reviews = [SENTIMENT["template"].format(input=r["text"]) for r in dev]
sums = [add[i]["input"] for i in order[n_add:n_add + per_task]]
requests = [r for pair in zip(reviews, sums) for r in zip(("sentiment", "addition"), pair)]
golds = [g for pair in zip([LABELS[int(r["label"])] for r in dev],
                           [add[i]["output"] for i in order[n_add:n_add + per_task]]) for g in pair]
other = {"sentiment": "addition", "addition": "sentiment"}

def serve(ids, prompt, last):
    """ids [B, T] after prompt [P, C] or [B, P, C]; last [B] = each row's last real token -> its next-token
    logits [B, V]. The blocks run on every position, the [C, V] head only on the one position per row that
    answers (model.logits would run it on all B * (P + T))."""
    h, _ = model.forward(model.embed(ids, prompt))  # [B, P + T, C]
    return model.head(h[np.arange(len(ids)), P + np.asarray(last)])  # [B, C] -> [B, V]

def one(task, text, prompt):  # one request alone -> logits [V]
    ids = tok.encode(text)
    return serve(np.array([ids]), prompt, [len(ids) - 1])[0]

alone = [one(task, text, prompts[task]) for task, text in requests]
swapped = [one(task, text, prompts[other[task]]) for task, text in requests]

# the mixed batch: rows right-padded with EOS, one prompt per row
last = np.array([len(tok.encode(text)) - 1 for _, text in requests])  # [B]
ids = np.full((len(requests), last.max() + 1), eos, dtype=np.int64)  # [B, T]
for r, (_, text) in enumerate(requests):
    ids[r, :last[r] + 1] = tok.encode(text)
stacked = np.stack([prompts[task] for task, _ in requests])  # [B, P, C]
mixed = serve(ids, stacked, last)  # [B, V]
print(f"\n2. {len(requests)} requests, alternating tasks; the mixed batch: ids {list(ids.shape)} [B, T], "
      f"prompts {list(stacked.shape)} [B, P, C]")
table(["request", "task", "with its prompt", "with the other task's", "in the mixed batch"],
      [(repr(text[-40:] if task == "addition" else "..." + text[-38:]), task, repr(answer(task, a, tok)),
        repr(answer(task, s, tok)), repr(answer(task, m, tok)))
       for (task, text), a, s, m in list(zip(requests, alone, swapped, mixed))[:SHOWN]])
print(f"   (the first {SHOWN} of {len(requests)})")
same = compare("mixed batch vs alone", mixed, np.stack(alone), **FLOAT32)
answers = {name: [answer(task, x, tok) for (task, _), x in zip(requests, logits)]
           for name, logits in (("own", mixed), ("swapped", swapped))}
right = {(name, task): np.mean([a == g for (t, _), a, g in zip(requests, answers[name], golds) if t == task])
         for name in answers for task in ("sentiment", "addition")}
print("   right answers: " + "; ".join(f"{task}: {right['own', task]:.0%} with its prompt (mixed batch), "
                                       f"{right['swapped', task]:.0%} with the other's" for task in other))
full = model.logits(ids, stacked)  # [B, P + T, V]: model.logits takes the [B, P, C] prompt as it is
compare("model.logits [B, P, C]", full[np.arange(len(requests)), P + last], mixed, **FLOAT32)

# %% [markdown]
# ## 3. what a switch costs, against what a model costs

# %%
seconds_alone, _ = timed(lambda: [one(task, text, prompts[task]) for task, text in requests], repeats)
seconds_mixed, _ = timed(lambda: serve(ids, stacked, last), repeats)
seconds_stack, _ = timed(lambda: np.stack([prompts[task] for task, _ in requests]), repeats)
seconds_model, fresh = timed(lambda: tinyprompt.load_model(model.name_or_path), repeats)
t0 = time.perf_counter()
fresh.logits(np.array([tok.encode(requests[0][1])]), prompts[requests[0][0]])  # the new copy's first request
first = time.perf_counter() - t0
prompt_file = runs["addition"] / WEIGHTS_NAME
model_file = find_weights(model.name_or_path) / "model.safetensors"
prompt_bytes, model_bytes = prompts["addition"].nbytes, model_file.stat().st_size
print(f"\n3. timings: median of {repeats} runs (time.perf_counter; other processes share the cores)")
rows = [("load a prompt from disk (prompt.load_prompt)", seconds_prompt),
        (f"stack {len(requests)} prompts into [B, P, C]", seconds_stack),
        ("load the model (tinyprompt.load_model: memory map + checks)", seconds_model),
        ("  then its first request (reads the weights in)", first),
        (f"{len(requests)} requests one at a time, switching prompts", seconds_alone),
        (f"the same {len(requests)} requests as one mixed batch", seconds_mixed)]
table(["operation", "ms"], [(name, f"{s * 1e3:.3f}") for name, s in rows])
print(f"   sizes: a prompt {P} x {model.config.n_embd} float32 = {human_bytes(prompt_bytes)} "
      f"({human_bytes(prompt_file.stat().st_size)} on disk with its header); the model file "
      f"{human_bytes(model_bytes)}: {model_bytes / prompt_bytes:,.0f}x more")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5), gridspec_kw={"width_ratios": [1.6, 1]})
names = ["load a prompt", f"stack {len(requests)} prompts", "load the model", "the new copy's\nfirst request",
         f"{len(requests)} requests,\none at a time", f"{len(requests)} requests,\none mixed batch"]
colours = ["C2", "C2", "C3", "C3", "C0", "C0"]
y = np.arange(len(rows))
ax1.barh(y, [s * 1e3 for _, s in rows], color=colours)
for i, (_, s) in enumerate(rows):
    ax1.text(s * 1e3, i, f" {s * 1e3:.3g} ms", va="center", fontsize=9)
ax1.set_yticks(y, names)
ax1.invert_yaxis()
ax1.set_xscale("log")
ax1.set_xlim(right=max(s for _, s in rows) * 1e3 * 6)  # room for the labels
ax1.set_xlabel("milliseconds (log scale), median of runs")
ax1.set_title("switching a prompt vs loading a model vs serving")
ax2.bar([0, 1], [prompt_bytes, model_bytes], color=["C2", "C3"])
ax2.set_yscale("log")
ax2.set_xticks([0, 1], [f"one prompt\n{P} x {model.config.n_embd}", "the model\nmodel.safetensors"])
ax2.bar_label(ax2.containers[0], labels=[human_bytes(prompt_bytes), human_bytes(model_bytes)])
ax2.set_ylabel("bytes (log scale)")
ax2.set_title("what one task adds vs what is shared")
fig.suptitle(f"Lesson 11: two tasks, one frozen model ({model.name_or_path})")
save_figure(fig, "11_task_switching")
differ = answers["own"] != answers["swapped"]
report("11", f"in one mixed batch every row gets its own prompt's logits, and each task is right at least "
       f"{MARGIN * 100:.0f} percentage points more often with its own prompt than with the other's",
       same and differ and all(right["own", t] >= right["swapped", t] + MARGIN for t in other),
       **{f"{name}_{task}": float(v) for (name, task), v in right.items()})
