"""Size discipline, as tinygrad keeps it: tinyprompt stays small enough to read in an afternoon.

Lines are counted without blank lines (docstrings and comments count: they are part of what a reader
reads). The package must not lean on torch / transformers / peft (those are the *reference* we test
against, never a dependency), nor on files outside the repo. Its modules import each other without a
cycle, so each can be read after the ones it uses, and a shared constant is defined in one place.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tinyprompt"
MODULES = sorted(PACKAGE.rglob("*.py"))

MAX_MODULE_LINES = 300  # core modules of 60-300 lines: split a module before it grows past this
EXCEPTIONS: dict[str, int] = {}  # "module.py": its own limit, with a comment saying why (none needed so far)
# Measured 1416 non-blank lines in 13 modules (after weights.py / hub.py split); 1800 was ~27% headroom.
# Raised to 2600 when the planned modules landed: measured 2188 in 16 modules with kernels.py (229), train.py
# (295), evaluate.py (94) and the tune/eval/inspect CLI (cli.py 187) -- ~19% headroom.
# Raise it on purpose when a planned module lands, not to make room for a module that should have been made shorter.
# Raised to 2800 with the reliability layer (run.py: --out checks, lock, overwrite swap, validated checkpoints),
# the Python API (api.py) and the model card (card.py): measured 2685 in 21 modules.
# Raised to 2859 by issue 14's training (validation accuracy from epoch 0, best/, --early-stopping, rows as lists,
# TrainConfig in config.py): measured 2859 in 22 modules.
# Raised to 3110 by issue 23's second reliability pass: validate.py (the argument checks the CLI and the Python API
# share), the API checking every argument, no debris after a failed tune, meaningless metrics refused: 3106 measured.
# Raised to 2990 by issue 24: threads.py (BLAS threads by the size of the matmul, 30) and the demo's estimate,
# dev subset and progress lines (demo.py 62 -> 140): measured 2981 in 24 modules.
# Issues 23 and 24 together, merged: 3221 measured in 25 modules (the baselines apart).
MAX_PACKAGE_LINES = 3230
# The baselines prompt tuning is weighed against (issue 21) are read apart from it and have a budget of their own:
# finetune.py 176 + lora.py 134 measured, with room for the comparison runner that the benchmark and lesson 13 share.
BASELINES = {"finetune.py", "lora.py", "compare.py"}
MAX_BASELINE_LINES = 600
FORBIDDEN_IMPORTS = {"torch", "transformers", "peft"}
FORBIDDEN_PATHS = ("../shared", "/shared/")
ROOT = PACKAGE.parent
# A pointer to a notes file that is not in the repo, or to a closed issue, reads as a dead link.
STALE = re.compile(r"STYLE\.md|issue[ -]6\b", re.IGNORECASE)


def lines(path):
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def imported_modules(path):
    """Top-level names of every module a file imports, anywhere in it (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # level > 0: relative, inside tinyprompt
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value).split(".")[0])  # importlib.import_module("torch")
    return names


def test_the_package_has_modules():
    assert len(MODULES) > 5  # guards the tests below against passing on an empty glob


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_under_budget(path):
    limit = EXCEPTIONS.get(path.name, MAX_MODULE_LINES)
    assert lines(path) <= limit, f"{path.name} has {lines(path)} non-blank lines (limit {limit}): split it"


def test_package_under_budget():
    counts = {p.name: lines(p) for p in MODULES if p.name not in BASELINES}
    total = sum(counts.values())
    biggest = ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
    assert total <= MAX_PACKAGE_LINES, f"tinyprompt/ has {total} non-blank lines (budget {MAX_PACKAGE_LINES}); " \
                                       f"biggest: {biggest}"


def test_baselines_under_budget():
    counts = {p.name: lines(p) for p in MODULES if p.name in BASELINES}
    assert {"finetune.py", "lora.py"} <= counts.keys()  # the budget below measures something
    assert sum(counts.values()) <= MAX_BASELINE_LINES, f"the baselines have {counts} non-blank lines " \
                                                       f"(budget {MAX_BASELINE_LINES})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_reference_frameworks_imported(path):
    assert not imported_modules(path) & FORBIDDEN_IMPORTS, f"{path.name} imports " \
        f"{sorted(imported_modules(path) & FORBIDDEN_IMPORTS)}: tinyprompt is NumPy-only (tests/ may use them)"


def test_no_paths_outside_the_repo():
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        text = path.read_bytes()
        for forbidden in FORBIDDEN_PATHS:
            assert forbidden.encode() not in text, f"{path.relative_to(PACKAGE.parent)} references {forbidden!r}"


def package_imports(path):
    """The tinyprompt modules a file imports, anywhere in it (a lazy import inside a function counts too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or node.module == "tinyprompt"):
            names.update([node.module] if node.level == 1 and node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyprompt."):
            names.add(node.module.split(".")[1])
    return names & {p.stem for p in MODULES}


def test_no_import_cycle():
    """Walk the import graph depth first; meeting a module that is still on the path is a cycle."""
    graph = {p.stem: package_imports(p) - {"__init__"} for p in MODULES if p.stem not in ("__init__", "__main__")}
    done = set()

    def visit(module, path):
        assert module not in path, f"import cycle: {' -> '.join(path[path.index(module):] + [module])}"
        if module not in done:
            for imported in sorted(graph[module]):
                visit(imported, [*path, module])
            done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_ignore_index_is_defined_once():
    defined = [p.name for p in MODULES for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "IGNORE_INDEX" for t in node.targets)]
    assert defined == ["data.py"], defined


def test_no_stale_references():
    ours = ("tinyprompt", "tests", "lessons", "benchmarks", "pretrain", "data")  # not the venvs' packages
    readable = [ROOT / "README.md", ROOT / "Makefile", *(p for d in ours for p in (ROOT / d).rglob("*")
                                                        if p.suffix in (".py", ".md"))]
    stale = [f"{p.relative_to(ROOT)}: {m.group()}" for p in readable
             for m in STALE.finditer(p.read_text(errors="replace"))]
    assert not stale, stale


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The import scan sees every spelling: plain, from, nested in a function, and import_module."""
    source = tmp_path / "m.py"
    source.write_text("import numpy as np\nfrom transformers.models import gpt2\n"
                      "def f():\n    import torch.nn\n    return importlib.import_module('peft')\n")
    assert imported_modules(source) == {"numpy", "torch", "transformers", "peft"}
    source.write_text("from .weights import flatten\nfrom tinyprompt import data\n"
                      "def f():\n    from tinyprompt.hub import resolve\n")
    assert package_imports(source) == {"weights", "data", "hub"}
    # (split in two, so this file does not hold what it looks for)
    assert STALE.search("see STYLE" ".md") and STALE.search("the Issue" "-6 target") and not STALE.search("issue 60")
    source.write_text("x = 1\n\n\n   \ny = 2\n")
    assert lines(source) == 2
