"""The adapter folder's model card (README.md), as PEFT's save_pretrained writes one: what the prompt was tuned
on and with, its final metrics, and how to load it in PEFT."""

from pathlib import Path

from .hub import repo_id
from .prompt import atomic_write


def base_model(name):
    """What adapter_config.json's base_model_name_or_path holds: a local folder as an ABSOLUTE path (a relative
    one breaks as soon as the adapter is loaded from another folder), any other name as its hub id."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else repo_id(name)


def model_card(cfg, metrics):
    """README.md's text for the run `cfg` after the epoch of `metrics`."""
    base = base_model(cfg.model)
    settings = ", ".join(f"{k} {getattr(cfg, k)}" for k in ("num_virtual_tokens", "optimizer", "lr", "epochs",
                                                           "batch_size", "accumulation_steps", "seed"))
    lines = [f"---\nbase_model: {base}\nlibrary_name: peft\ntags:\n- prompt-tuning\n- tinyprompt\n---\n",
             f"# Soft prompt for {base}\n",
             (f"A PEFT adapter of type PROMPT_TUNING ({cfg.num_virtual_tokens} virtual tokens), tuned by "
              f"tinyprompt on `{Path(cfg.data).name}`.\n"),
             "## Load it in PEFT\n", "```python",
             "from peft import PeftModel",
             "from transformers import AutoModelForCausalLM",
             f'base = AutoModelForCausalLM.from_pretrained("{base}")',
             'model = PeftModel.from_pretrained(base, "path/to/this/folder")', "```\n",
             "## Training\n", f"Settings: {settings}.\n",
             f"After epoch {metrics['epochs_done']} ({metrics['steps_done']} steps): train loss "
             f"{metrics['epoch_losses'][-1]:.4f}"
             + (f", validation loss {metrics['val_losses'][-1]:.4f}" if metrics["val_losses"] else "") + ".\n",
             *([(f"The best validation epoch so far is {metrics['validation']['best_epoch']}: its prompt is in "
                 "`best/`.\n")] if metrics.get("validation") else []),
             "![loss](loss.png)\n"]
    return "\n".join(lines)


def write_card(directory, cfg, metrics):
    atomic_write(Path(directory) / "README.md", model_card(cfg, metrics).encode())
