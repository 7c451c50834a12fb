"""Does prompt tuning *work*? Task quality on tiny-pretrained, against zero-shot, hard prompts and PEFT.

    .venv/bin/python benchmarks/quality.py [--model tiny-pretrained] [--tasks sst2,addition,antonyms] [--no-peft]
    make quality          # installs the reference extra (torch + PEFT) first

For each task, one table row per prompt, all scored by tinyprompt's own evaluator on the same held-out rows:
- zero-shot: the bare model with the task's template, which the model never saw in pretraining;
- hard prompt: the best of three hand-written instructions put in front of the template;
- untuned prompt (control): the soft prompt's initialisation, never trained;
- tinyprompt: the soft prompt tuned by `tinyprompt.train`;
- PEFT: the same tuning in torch + PEFT (same model, data, batch order, init and hyper-parameters), so the
  check is that our training loop learns as well as the reference's, not just that one step agrees.
The recipe is the demo's: 10 virtual tokens, AdamW lr 0.03, batch 8; SST-2 initialises from the label words,
trains 2 epochs on data/sst2/train.tsv (2,000 rows) and scores the 872 dev sentences by rank classification.
Addition (19 distinct sums) and antonyms (96 words) have more outputs than virtual tokens, so their prompts
start from sampled vocabulary embeddings; they are small, so they train on a seeded 60% of their rows for more
epochs and score exact match on the other 40%. Addition's 60 rows make 8 batches an epoch: its 100 epochs are
800 optimizer steps, the same order as SST-2's 500 (2 epochs would be 16 steps, and 60 epochs, 480 steps,
leave some sums off by one: 0.825 on v2). Prints a Markdown table and writes it with the raw numbers to benchmarks/out/.
"""

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import tinyprompt
from tinyprompt.data import batches, load_data, parse_label_words, split_validation
from tinyprompt.evaluate import evaluate, with_prefix
from tinyprompt.prompt import init_prompt
from tinyprompt.train import TrainConfig, train

RECIPE = {"num_virtual_tokens": 10, "lr": 0.03, "batch_size": 8, "seed": 0}


@dataclass
class Task:
    train: str  # training file (relative to the repo)
    metric: str  # "accuracy" (rank classification over `labels`) or "exact_match"
    epochs: int
    init: str  # "labels" needs no more distinct outputs than virtual tokens; else "vocab"
    hard_prompts: list
    test: str | None = None  # a separate test file; else `split` of `train` is held out for testing
    split: float | None = None
    labels: list | None = None
    columns: dict = field(default_factory=dict)  # template, input/output columns, label words


TASKS = {
    "sst2": Task("data/sst2/train.tsv", "accuracy", 2, "labels", test="data/sst2/dev.tsv", labels=[" negative", " positive"],
                 columns={"input_column": "text", "output_column": "label", "template": "{input}Sentiment:",
                          "label_words": "0= negative,1= positive"},
                 hard_prompts=["Decide if the movie review is positive or negative.\n",
                               "Is this review positive or negative?\n",
                               "Classify the sentiment of the review as positive or negative.\n"]),
    "addition": Task("data/toy/addition.jsonl", "exact_match", 100, "vocab", split=0.4,
                     hard_prompts=["Add the two numbers.\n", "2 plus 3 is 5. 4 plus 1 is 5.\n",
                                   "Arithmetic: compute the sum.\n"]),
    "antonyms": Task("data/toy/antonyms.jsonl", "exact_match", 8, "vocab", split=0.4,
                     hard_prompts=["Give the opposite word.\n", "The opposite of big is small.\n",
                                   "Antonyms:\n"]),
}


def task_rows(task, tok, max_length):
    """(train examples, test examples, the full data set) of a task, split as train() splits them."""
    args = {**task.columns, "label_words": parse_label_words(task.columns["label_words"])
            if "label_words" in task.columns else None, "max_length": max_length}
    data = load_data(ROOT / task.train, tok, **args)
    if task.test:
        return data.examples, load_data(ROOT / task.test, tok, **args).examples, data
    train_rows, test_rows = split_validation(data.examples, task.split, RECIPE["seed"])
    return train_rows, test_rows, data


def peft_tune(model_dir, prompt0, train_rows, epochs, pad_id):
    """The same tuning in torch + PEFT: same init, same batches in the same order, AdamW with our defaults."""
    import torch
    from peft import PromptTuningConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    P, C = prompt0.shape
    peft = get_peft_model(hf, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, token_dim=C))
    weight = peft.prompt_encoder["default"].embedding.weight
    weight.data = torch.tensor(prompt0)
    opt = torch.optim.AdamW([weight], lr=RECIPE["lr"], weight_decay=0.0)
    for epoch in range(epochs):
        for ids, labels in batches(train_rows, RECIPE["batch_size"], pad_id, RECIPE["seed"], epoch):
            # right padding needs no attention mask under the causal mask; padded labels are -100
            loss = peft(input_ids=torch.from_numpy(ids), labels=torch.from_numpy(labels)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return weight.detach().numpy().copy()


def run_task(name, task, model, tok, use_peft, out):
    P = RECIPE["num_virtual_tokens"]
    train_rows, test_rows, data = task_rows(task, tok, model.config.n_positions - P)
    scores = {}  # name -> evaluate()'s {"loss", "exact_match", "accuracy"}; the table shows task.metric

    def score(prompt, rows=test_rows):
        result = evaluate(model, prompt, rows, tok, task.labels)
        return result[task.metric], result

    results = {"zero-shot": score(None)}
    hard = {h: score(None, with_prefix(test_rows, tok.encode(h))) for h in task.hard_prompts}
    best = max(hard, key=lambda h: hard[h][0])
    results[f"best hard prompt {best!r}"] = hard[best]
    prompt0 = init_prompt(task.init, P, model.wte, tok, outputs=data.outputs(), seed=RECIPE["seed"])
    results["untuned prompt (control)"] = score(prompt0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [{"input": tok.decode(e.input_ids[: e.n_input]), "output": e.output} for e in train_rows]
        cfg = TrainConfig(model=model.name_or_path, data=write_jsonl(Path(tmp) / "train.jsonl", rows),
                          out=str(Path(tmp) / "run"), epochs=task.epochs, init=task.init, quiet=True, **RECIPE)
        prompt, _ = train(cfg, model, tok)
    seconds = time.perf_counter() - t0
    results["tinyprompt"] = score(prompt)
    if use_peft:
        results["PEFT"] = score(peft_tune(model.name_or_path, prompt0, train_rows, task.epochs, tok.eos_id))
    scores = {k: v[1] for k, v in results.items()}
    results = {k: v[0] for k, v in results.items()}
    print(f"{name}: {len(train_rows)} train rows, {len(test_rows)} test rows, {task.epochs} epochs "
          f"({seconds:.0f} s to tune)", flush=True)
    return {"metric": task.metric, "train_rows": len(train_rows), "test_rows": len(test_rows),
            "epochs": task.epochs, "tune_seconds": round(seconds, 1), "results": results, "scores": scores}


def write_jsonl(path, rows):
    """The training rows as input/output pairs with the template already applied (train() applies "{input}")."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def table(report):
    lines = ["| task | metric | zero-shot | best hard prompt | untuned prompt | tinyprompt | PEFT |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report.items():
        res = r["results"]
        hard = next(v for k, v in res.items() if k.startswith("best hard"))
        peft = f"{res['PEFT']:.3f}" if "PEFT" in res else "not run"
        lines.append(f"| {name} | {r['metric']} ({r['test_rows']} rows) | {res['zero-shot']:.3f} | {hard:.3f} | "
                     f"{res['untuned prompt (control)']:.3f} | **{res['tinyprompt']:.3f}** | {peft} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-pretrained")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--no-peft", action="store_true", help="skip the PEFT column (no torch needed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args(argv)
    model, tok = tinyprompt.load_model(args.model), tinyprompt.load_tokenizer(args.model)
    model.name_or_path = str(tinyprompt.hub.find_weights(args.model))  # a folder: PEFT loads the same weights
    report = {name: run_task(name, TASKS[name], model, tok, not args.no_peft, args.out)
              for name in args.tasks.split(",")}
    text = table(report)
    print("\n" + text)
    for name, r in report.items():
        print(f"\n{name} ({r['metric']}; test loss in brackets): " + ", ".join(
            f"{k} {v:.3f} ({r['scores'][k]['loss']:.3f})" for k, v in r["results"].items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "quality.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
