"""Lesson 09 -- where the prompt starts: random, vocab, text and class-label initialisation.

What it teaches
  Gradient descent has to start somewhere, and for a soft prompt the start matters. Lester et al. (section
  3.2) compare the starts below on T5. The four starts of prompt.init_prompt:
  - random: uniform in [-0.5, 0.5], the paper's random init. Its vectors lie far from every real token
    (their norms against wte's are printed);
  - vocab: rows of wte for frequent tokens (ids below 5,000), the paper's "sampled vocab";
  - text: the embeddings of a task description, repeated or cut to P tokens (PEFT's TEXT init);
  - labels: the embeddings of the class labels " negative" and " positive" in the first rows, the rest as
    vocab (the paper's "class label" init).
  Every run uses the same data, batches, learning rate and number of steps; only the start differs. So the
  curves show how the start alone shapes a short run.

The claim, measured: the start matters more than the seed. Over 3 seeds, the range of the four starts' mean
final validation losses exceeds every start's own range over seeds (the control: what the seed alone does).

What to look at
  - the table: the norm of each start's vectors against wte's, and the validation loss before and after;
  - lessons/out/09_initialization.png: the four validation curves, mean and min..max band over seeds, with
    the chance levels ln V (uniform over the vocabulary) and ln 2 (a coin between the labels).
"""

import matplotlib.pyplot as plt
import numpy as np
from common import DATA, load, parse_args, report, sample, save_figure, table, tune

from tinyprompt import data
from tinyprompt.prompt import INIT_METHODS, init_prompt
from tinyprompt.train import mean_loss

TEMPLATE = "Review: {input}\nSentiment:"
LABEL_WORDS = "0= negative,1= positive"
INIT_TEXT = "Is this movie review positive or negative?"
COLUMNS = {"input_column": "text", "output_column": "label", "template": TEMPLATE}
P, LR, BATCH, SEED = 8, 0.03, 8, 0
SEEDS = (0, 1, 2)  # >= 3: a difference smaller than the spread over seeds is noise


def main():
    args = parse_args(__doc__)
    model, tok = load(args)
    n_train, n_val, epochs = (16, 8, 2) if args.quick else (32, 16, 2)
    train_path = sample(DATA / "sst2" / "train.tsv", n_train, "09_sst2_train.tsv")
    val_path = sample(DATA / "sst2" / "dev.tsv", n_val, "09_sst2_val.tsv")
    label_words = data.parse_label_words(LABEL_WORDS)
    train_data = data.load_data(train_path, tok, TEMPLATE, input_column="text", output_column="label",
                                label_words=label_words)
    val_rows = data.load_data(val_path, tok, TEMPLATE, input_column="text", output_column="label",
                              label_words=label_words).examples
    steps = epochs * data.num_batches(n_train, BATCH)
    w_norms = np.linalg.norm(model.wte, axis=1)  # [V]
    print(f"\n1. SST-2: {n_train} training rows (train.tsv), {n_val} validation rows (dev.tsv), seed {SEED}; "
          f"P={P}, AdamW lr {LR}, batch {BATCH}, {epochs} epochs = {steps} steps for every start")
    print(f"   text init: {INIT_TEXT!r} ({len(tok.encode(INIT_TEXT))} tokens, repeated or cut to {P}); labels init: "
          f"{train_data.outputs()} in the first rows")
    print(f"   wte row norms: median {np.median(w_norms):.3f}, min {w_norms.min():.3f}, max {w_norms.max():.3f}")

    runs = {init: [run_init(model, tok, init, seed, train_path, val_path, val_rows, train_data, epochs)
                   for seed in SEEDS] for init in INIT_METHODS}  # init -> one (start, val0, metrics) per seed
    shared = sum(any(np.array_equal(row, other) for other in runs["vocab"][0][0]) for row in runs["labels"][0][0])
    print(f"   (the labels start shares {shared} of its {P} vectors with the vocab start)")
    final = {init: np.array([m["val_losses"][-1] for *_, m in r]) for init, r in runs.items()}  # [seeds]
    print(f"\n2. the four starts x {len(SEEDS)} seeds (seed: the random/vocab draw and the batch order), each tuned "
          f"for {steps} steps")
    table(["init", "mean |vector| at start", "val loss at start (mean)", "val loss at the end: mean",
           "min..max over seeds"],
          [(init, f"{np.mean([np.linalg.norm(s, axis=1).mean() for s, _, _ in r]):.3f}",
            f"{np.mean([v for _, v, _ in r]):.4f}", f"{final[init].mean():.4f}",
            f"{final[init].min():.3f}..{final[init].max():.3f}") for init, r in runs.items()])

    fig, ax = plt.subplots(figsize=(10, 6))
    for i, (init, r) in enumerate(runs.items()):
        curves = np.array([[v0, *m["val_losses"]] for _, v0, m in r])  # [seeds, epochs + 1]
        ax.plot(np.arange(epochs + 1), curves.mean(0), "o-", color=f"C{i}", lw=2, label=f"{init} (mean)")
        ax.fill_between(np.arange(epochs + 1), curves.min(0), curves.max(0), color=f"C{i}", alpha=0.2)
    V = model.config.vocab_size
    ax.axhline(np.log(V), color="crimson", ls=":", label=f"ln V = {np.log(V):.2f}: uniform over the vocabulary")
    ax.axhline(np.log(2), color="crimson", ls="--", label=f"ln 2 = {np.log(2):.2f}: a coin between the 2 labels")
    ax.set_xticks(range(epochs + 1))
    ax.set_xlabel("epoch (0: before the first step)")
    ax.set_ylabel("validation loss (cross-entropy of the label token, nats)")
    ax.set_ylim(0, None)
    ax.set_title(f"Lesson 09: four initialisations of P={P} virtual tokens, {len(SEEDS)} seeds each (band: "
                 f"min..max), {n_train} SST-2 rows ({model.name_or_path})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    save_figure(fig, "09_initialization")
    means = {k: float(v.mean()) for k, v in final.items()}
    between = max(means.values()) - min(means.values())  # how much the start matters
    within = max(float(v.max() - v.min()) for v in final.values())  # how much the seed alone matters (control)
    report("09", "the start matters more than the seed: the range of the starts' mean final validation losses "
           "exceeds every start's range over seeds", between > within, between=between, within=within, **means)


def run_init(model, tok, init, seed, train_path, val_path, val_rows, train_data, epochs):
    """Tune from one start with one seed -> (start [P, C], validation loss at the start, metrics)."""
    # the prompt train() starts from: the same call with the same arguments (init_prompt is deterministic)
    start = init_prompt(init, P, model.wte, tok, INIT_TEXT, train_data.outputs(), seed)
    val0 = mean_loss(model, start, val_rows, BATCH, tok.eos_id)
    _, metrics = tune(model, tok, f"09_{init}_{seed}", data=str(train_path), val_data=str(val_path),
                      num_virtual_tokens=P, init=init, init_text=INIT_TEXT if init == "text" else None,
                      lr=LR, epochs=epochs, batch_size=BATCH, seed=seed, label_words=LABEL_WORDS, quiet=True,
                      **COLUMNS)
    return start, val0, metrics


if __name__ == "__main__":
    main()
