"""Build the lessons into a static HTML book that opens from disk with no network: `make book` (full runs) or
`make book QUICK=1` (--quick runs), into lessons/out/book/ (open lessons/out/book/index.html).

Each lesson lessons/NN_name.py is a jupytext percent-format script. The build reads it as a notebook (jupytext),
runs it cell by cell in a Jupyter kernel (nbclient; the lesson's flags come from $TINYPROMPT_LESSON_ARGS, see
common.parse_args), and renders it with nbconvert's JupyterLab template: prose, code, printed output and
figures in place. The math is rendered at build time, LaTeX to MathML (latex2mathml), which the browser draws
itself: no MathJax, no CDN, no script at all. The figures are written beside the pages as PNG files. An index
lists every lesson with what it teaches, its claim and whether it held, and its runtime.

A new lesson joins the book by existing: every lessons/[0-9][0-9]_*.py is built, in name order.
"""

import argparse
import html
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LESSONS_DIR = Path(__file__).resolve().parent
OUT = LESSONS_DIR / "out"
BOOK = OUT / "book"
MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?=\S)([^$]+?)(?<=\S)\$", re.DOTALL)  # display, then inline
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)  # `code` is left alone: a `$` there is not math
LESSON_LINK = re.compile(r"\]\((\d\d_[A-Za-z0-9_]+)\.py\)")  # [lesson 06](06_training_loop.py) -> .html

TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{#- Offline: no require.js, MathJax or mermaid from a CDN (the math is MathML already, see book.py) -#}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style>{{ resources.book.css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.book.nav }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.book.nav }}
{{ super() }}
{%- endblock body_footer -%}
"""

CSS = """
body.jp-Notebook main { max-width: 1100px; margin: 0 auto; }
nav.book { display: flex; justify-content: space-between; max-width: 1100px; margin: 0.8em auto; padding: 0.5em 1em;
  font-family: system-ui, sans-serif; font-size: 15px; border-bottom: 1px solid #ddd; }
nav.book a { text-decoration: none; color: #1a5fb4; }
nav.book .run { color: #666; font-size: 13px; }
math[display="block"] { margin: 0.6em 0; overflow-x: auto; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
"""

INDEX_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 0.5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; white-space: nowrap; }
.holds { color: #26a269; font-weight: bold; }
.fails { color: #c01c28; font-weight: bold; }
.error { color: #c01c28; }
a { color: #1a5fb4; }
.nums { color: #666; font-size: 13px; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def lessons():
    """Every lesson, in name order: lessons/NN_name.py."""
    return sorted(LESSONS_DIR.glob("[0-9][0-9]_*.py"))


def latex_to_mathml(tex, display):
    import latex2mathml.converter

    tex = re.sub(r"\n\s*", " ", tex).strip()
    return latex2mathml.converter.convert(tex, display="block" if display else "inline")


def math_to_placeholders(source, store):
    """Replace each $...$ / $$...$$ of a markdown cell by a placeholder word (markdown cannot mangle it) and keep
    its MathML in `store`; code spans are left as they are."""
    def convert(m):
        key = f"tpmath{len(store):05d}x"
        store[key] = latex_to_mathml(m.group(1) or m.group(2), display=m.group(1) is not None)
        return key

    parts = []
    last = 0
    for code in CODE_SPAN.finditer(source):
        parts.append(MATH.sub(convert, source[last:code.start()]))
        parts.append(code.group(0))
        last = code.end()
    parts.append(MATH.sub(convert, source[last:]))
    return "".join(parts)


def prose_html(text):
    """A line of prose as HTML (the index's 'what it teaches'): `code` as <code>, $...$ as MathML, the rest
    escaped."""
    def math(part):
        out, last = [], 0
        for m in MATH.finditer(part):
            out += [html.escape(part[last:m.start()]),
                    latex_to_mathml(m.group(1) or m.group(2), m.group(1) is not None)]
            last = m.end()
        return "".join([*out, html.escape(part[last:])])

    out, last = [], 0
    for code in CODE_SPAN.finditer(text):
        out += [math(text[last:code.start()]), f"<code>{html.escape(code.group(2))}</code>"]
        last = code.end()
    return "".join([*out, math(text[last:])])


def summary(nb):
    """(title, what it teaches: the first paragraph under '## What it teaches') from the first markdown cell."""
    text = next(c.source for c in nb.cells if c.cell_type == "markdown")
    lines = text.splitlines()
    title = lines[0].lstrip("# ").strip() if lines else ""
    teaches, inside = [], False
    for line in lines[1:]:
        if line.startswith("## "):
            if inside:
                break
            inside = line.strip() == "## What it teaches"
            continue
        if inside:
            if not line.strip() and teaches:
                break
            if line.startswith("- ") and teaches:
                break
            teaches.append(line.strip())
    if not teaches:  # no '## What it teaches': the first paragraph after the title
        paragraphs = [x for x in "\n".join(lines[1:]).split("\n\n") if x.strip() and not x.startswith("#")]
        teaches = paragraphs[0].split() if paragraphs else []
    first = " ".join(teaches).replace("**", "")  # code spans and math stay: prose_html renders them
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", first)
    kept = sentences[:1]
    for sentence in sentences[1:]:
        if len(" ".join(kept)) + len(sentence) > 260:
            break
        kept.append(sentence)
    while len(kept) > 1 and kept[-1].endswith(":"):  # a sentence that introduces a list the index leaves out
        kept.pop()
    return title, " ".join(kept).rstrip(":") + ("." if kept and kept[-1].endswith(":") else "")


def run(path, args, timeout):
    """Execute one lesson as a notebook in a fresh kernel (cwd: lessons/) -> (notebook, seconds, error or None)."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(LESSONS_DIR)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
    except Exception as e:  # noqa: BLE001 -- a dead kernel, a timeout: the page still shows what ran
        error = f"{type(e).__name__}: {e}"
    return nb, time.perf_counter() - start, error


def claim_of(path, since):
    """The lesson's measured claim (lessons/out/NN.json, written by common.report) if this run wrote it."""
    result = OUT / f"{path.name[:2]}.json"
    if result.is_file() and result.stat().st_mtime >= since - 1:
        return json.loads(result.read_text())
    return None


def nav(pages, i, seconds, quick):
    prev = f'<a href="{pages[i - 1][0]}">&larr; {html.escape(pages[i - 1][1])}</a>' if i > 0 else "<span></span>"
    nxt = f'<a href="{pages[i + 1][0]}">{html.escape(pages[i + 1][1])} &rarr;</a>' if i + 1 < len(pages) \
        else "<span></span>"
    mode = "--quick" if quick else "full run"
    notebook = pages[i][0].replace(".html", ".ipynb")
    return (f'<nav class="book">{prev}<span><a href="index.html">all lessons</a> '
            f'<span class="run">({mode}, {seconds:.0f} s; <a href="{notebook}">the notebook</a>)</span></span>'
            f'{nxt}</nav>')


def render(nb, name, nav_html):
    """The executed notebook -> (HTML, {figure file name: PNG bytes})."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    store = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = LESSON_LINK.sub(r"](\1.html)", math_to_placeholders(cell.source, store))
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"book.html.j2": TEMPLATE})],
                            template_file="book.html.j2")
    exporter.register_preprocessor("nbconvert.preprocessors.ExtractOutputPreprocessor", enabled=True)
    resources = {"book": {"css": CSS, "nav": nav_html}, "output_files_dir": f"{name}_files",
                 "unique_key": name}
    body, resources = exporter.from_notebook_node(nb, resources=resources)
    for key, mathml in store.items():
        body = body.replace(key, mathml)
    return body, resources.get("outputs", {})


def _fmt(v):
    """A measured number as the index shows it: 3 significant digits; lists item by item."""
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def index_page(entries, quick, total):
    rows = []
    for e in entries:
        claim = e["claim"]
        if e["error"]:
            verdict = f'<span class="error">failed: {html.escape(e["error"])}</span>'
        elif claim is None:
            verdict = "<em>no claim: this lesson shows, it does not measure against a control</em>"
        else:
            mark = '<span class="holds">holds</span>' if claim["holds"] else '<span class="fails">does not hold</span>'
            numbers = ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in claim.items()
                                if k not in ("claim", "holds"))
            verdict = f'{mark}: {html.escape(claim["claim"])} <span class="nums">({html.escape(numbers)})</span>'
        rows.append(f'<tr><td><a href="{e["page"]}">{html.escape(e["title"])}</a></td>'
                    f'<td>{prose_html(e["teaches"])}</td><td>{verdict}</td>'
                    f'<td class="num">{e["seconds"]:.0f} s</td></tr>')
    mode = "<code>--quick</code> runs (<code>make book QUICK=1</code>)" if quick else "full runs (<code>make book</code>)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tinyprompt: the lessons</title>
<style>{INDEX_CSS}</style></head><body>
<h1>tinyprompt: the lessons</h1>
<p>Soft prompt tuning on a frozen GPT-2, from a token id to a served soft prompt, in NumPy and Numba with a
hand-written backward pass. Each lesson is a runnable script and a notebook (<code>lessons/NN_name.py</code>, jupytext
percent format); this book shows each one run, with its prose, code, printed output and figures in place.</p>
<p>Built {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} from {mode}; {len(entries)} lessons in
{total:.0f} s of wall time.</p>
<table><tr><th>lesson</th><th>what it teaches</th><th>its claim, measured against a control</th><th>runtime</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def previous_runtimes(summary, quick):
    """{page: seconds} from the last build of the same kind (book.json), or {} when there is none."""
    try:
        last = json.loads(summary.read_text())
    except (OSError, ValueError):
        return {}
    return {e["page"]: e["seconds"] for e in last.get("lessons", [])} if last.get("quick") == quick else {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="build from the lessons' --quick runs")
    parser.add_argument("--model", default=None, help="passed to every lesson (default: theirs, tiny-pretrained)")
    parser.add_argument("--jobs", type=int, default=2, help="lessons run at the same time (default 2)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds one cell may take (default 900)")
    parser.add_argument("--out", type=Path, default=BOOK, help=f"the book's folder (default {BOOK})")
    parser.add_argument("--only", nargs="*", help="build only these lessons (numbers such as 05), for a look")
    parser.add_argument("--render-only", action="store_true",
                        help="re-render the pages from the notebooks the last build left in --out, running nothing")
    args = parser.parse_args(argv)
    flags = (["--quick"] if args.quick else []) + (["--model", args.model] if args.model else [])
    os.environ["TINYPROMPT_LESSON_ARGS"] = " ".join(flags)  # read by common.parse_args inside the kernel
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.jobs > 1:  # two lessons side by side on two cores: one BLAS thread each, as tests/test_lessons.py
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    paths = [p for p in lessons() if not args.only or p.name[:2] in args.only]
    if not paths:
        sys.exit("no lessons/NN_*.py found")

    start = time.perf_counter()
    if args.render_only:
        write_book(args.out, rerun_from(args.out, paths), args.quick, json.loads((args.out / "book.json").read_text())
                   ["seconds"])
        return

    def one(path):
        t0 = time.time()
        nb, seconds, error = run(path, flags, args.timeout)
        print(f"{path.name}: {seconds:.1f} s" + (f"  FAILED: {error}" if error else ""), flush=True)
        return path, nb, seconds, error, claim_of(path, t0)

    # Longest first, by the last build's runtimes (a lesson not timed yet counts as long): the slow lesson then
    # runs beside the others instead of after them.
    last = previous_runtimes(args.out / "book.json", args.quick)
    order = sorted(paths, key=lambda p: -last.get(f"{p.stem}.html", float("inf")))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = {r[0]: r for r in pool.map(one, order)}
    results = [done[p] for p in paths]  # the book's order: by name
    total = time.perf_counter() - start
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    for path, nb, *_ in results:  # the executed notebooks, beside their pages (and for --render-only)
        import nbformat

        nbformat.write(nb, args.out / f"{path.stem}.ipynb")
    write_book(args.out, results, args.quick, total)


def rerun_from(out, paths):
    """The results of the last build, read back from its notebooks and book.json (for --render-only)."""
    import nbformat

    last = {e["page"]: e for e in json.loads((out / "book.json").read_text())["lessons"]}
    return [(p, nbformat.read(out / f"{p.stem}.ipynb", as_version=4), last[f"{p.stem}.html"]["seconds"],
             last[f"{p.stem}.html"]["error"], last[f"{p.stem}.html"]["claim"]) for p in paths]


def write_book(out, results, quick, total):
    """The pages, their figures, the index and book.json, from the executed notebooks."""
    pages = [(f"{p.stem}.html", summary(nb)[0]) for p, nb, *_ in results]
    entries = []
    for i, (path, nb, seconds, error, claim) in enumerate(results):
        title, teaches = summary(nb)
        body, figures = render(nb, path.stem, nav(pages, i, seconds, quick))
        (out / pages[i][0]).write_text(body, encoding="utf-8")
        for name, data in figures.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        entries.append({"page": pages[i][0], "title": title, "teaches": teaches, "claim": claim,
                        "seconds": seconds, "error": error})
    (out / "index.html").write_text(index_page(entries, quick, total), encoding="utf-8")
    (out / "book.json").write_text(json.dumps({"quick": quick, "seconds": total, "lessons": entries},
                                              indent=1) + "\n")
    print(f"book: {out / 'index.html'} ({len(entries)} lessons, {total:.0f} s)")
    failed = [e["page"] for e in entries if e["error"]]
    if failed:
        sys.exit(f"lessons that failed: {', '.join(failed)} (their pages show the error)")


if __name__ == "__main__":
    main()
