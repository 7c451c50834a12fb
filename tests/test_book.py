"""The lessons' book (lessons/book.py, `make book`), opened in a real browser: headless Chromium.

The book is built from the --quick runs into a temporary folder, or read from $TINYPROMPT_BOOK when that names a
book already built (CI: `make book QUICK=1`, then this file with TINYPROMPT_BOOK=lessons/out/book). Every lesson
must have its page and its index row; in Chromium every figure must load and every formula must be laid out as
MathML, with no raw TeX left in the visible prose; the pages must name no network resource.

Needs the `book` extra (`pip install -e '.[book]'`, what `make book` installs) and Debian's `chromium`
(`.ci/run` installs it). Marked `book`: `make test` leaves it out; run it with `pytest -m book`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
sys.path.insert(0, str(ROOT / "lessons"))

pytestmark = pytest.mark.book

# Loaded in an iframe of a harness page; writes what it finds into the harness's DOM, which --dump-dom prints.
HARNESS = """<!DOCTYPE html><html><body><iframe id="f" style="width:1200px;height:900px"></iframe><pre id="out">
</pre><script>
const f = document.getElementById("f");
f.onload = () => {
  const d = f.contentDocument;
  const imgs = [...d.images].map(i => ({src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0}));
  const maths = [...d.querySelectorAll("math")];
  const displays = maths.map(m => getComputedStyle(m).display);
  const sizes = maths.map(m => { const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  const cells = [...d.querySelectorAll(".jp-MarkdownCell")];  // a lesson's prose; the index is all prose
  const prose = (cells.length ? cells : [d.body]).map(c => {
    const copy = c.cloneNode(true);
    copy.querySelectorAll("code, pre").forEach(e => e.remove());
    return copy.innerText; }).join("\\n");
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(
    {images: imgs, displays: displays, sized: sizes.filter(Boolean).length, maths: maths.length,
     prose: prose, title: d.title, links: [...d.querySelectorAll("nav.book a")].map(a => a.getAttribute("href"))});
};
f.src = PAGE;
</script></body></html>"""
RAW_TEX = re.compile(r"\$|\\[A-Za-z]{2,}|\^\{|_\{")  # $, \frac, \hat, ^{...}, _{...} left in visible text


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no Chromium: install Debian's `chromium` package (apt-get install chromium), as .ci/run does")


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    given = os.environ.get("TINYPROMPT_BOOK")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, str(ROOT / "lessons" / "book.py"), "--quick", "--out", str(out)],
                         cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"the book did not build:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return out


def open_in_chromium(page, tmp_path):
    """The harness's findings for one page of the book, from a headless Chromium."""
    harness = tmp_path / f"harness_{page.stem}.html"
    harness.write_text(HARNESS.replace("PAGE", json.dumps(page.as_uri())))
    run = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--allow-file-access-from-files",
                          "--virtual-time-budget=20000", "--dump-dom", harness.as_uri()],
                         check=False, capture_output=True, text=True, timeout=180)
    found = re.search(r"RESULT(.*?)</pre>", run.stdout, re.DOTALL)
    assert found, f"Chromium gave no result for {page.name}:\n{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
    import html

    return json.loads(html.unescape(found.group(1)))


def test_every_lesson_has_a_page_and_an_index_row(book):
    index = (book / "index.html").read_text()
    summary = json.loads((book / "book.json").read_text())
    assert [e["page"] for e in summary["lessons"]] == [f"{p.stem}.html" for p in LESSONS]
    for lesson in LESSONS:
        assert (book / f"{lesson.stem}.html").is_file(), f"no page for {lesson.name}"
        assert f'href="{lesson.stem}.html"' in index, f"the index does not link {lesson.name}"
    for entry in summary["lessons"]:
        assert entry["error"] is None, f"{entry['page']}: {entry['error']}"
        assert entry["teaches"], f"{entry['page']}: no 'what it teaches' in the index"
        assert entry["seconds"] > 0
        if entry["claim"] is not None:
            assert entry["claim"]["holds"], f"{entry['page']}: the claim does not hold: {entry['claim']}"
            assert "holds</span>: " + entry["claim"]["claim"][:40] in index.replace("&#x27;", "'")


def test_pages_name_no_network_resource(book):
    for page in sorted(book.glob("*.html")):
        text = page.read_text()
        remote = re.findall(r"""<(?:script|img|link|iframe)[^>]+(?:src|href)=["']?(?:https?:)?//[^"'> ]+""", text)
        assert not remote, f"{page.name} loads from the network: {remote[:3]}"
        assert "mathjax" not in text.lower(), f"{page.name} still loads MathJax"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_page_in_chromium(book, lesson, tmp_path):
    found = open_in_chromium(book / f"{lesson.stem}.html", tmp_path)
    assert found["title"], f"{lesson.stem}.html did not load"
    assert found["images"], f"{lesson.stem}.html shows no figure (every lesson saves one: tests/test_lessons.py)"
    broken = [i["src"] for i in found["images"] if not i["ok"]]
    assert not broken, f"{lesson.stem}.html: figures that do not load: {broken}"
    assert found["sized"] == found["maths"], f"{lesson.stem}.html: {found['maths'] - found['sized']} formulas not laid out"
    assert all(d in ("math", "block math", "inline math") for d in found["displays"]), \
        f"{lesson.stem}.html: MathML not rendered as math (display: {sorted(set(found['displays']))})"
    raw = RAW_TEX.findall(found["prose"])
    assert not raw, f"{lesson.stem}.html: raw TeX in the visible text: {raw[:5]}"
    assert "index.html" in found["links"], f"{lesson.stem}.html: no link back to the index"


def test_index_in_chromium(book, tmp_path):
    found = open_in_chromium(book / "index.html", tmp_path)
    assert found["title"], "index.html did not load"
    assert found["sized"] == found["maths"], "the index's formulas are not laid out"
    raw = RAW_TEX.findall(found["prose"])
    assert not raw, f"index.html: raw TeX in the visible text: {raw[:5]}"


def test_lesson_05_renders_its_derivations(book, tmp_path):
    """The lesson with the most math: dozens of formulas, every one laid out, and its figure shown."""
    found = open_in_chromium(book / "05_backward.html", tmp_path)
    assert found["maths"] >= 30, f"only {found['maths']} formulas on the derivations' page"
    assert found["images"] and all(i["ok"] for i in found["images"])


def test_math_placeholders_skip_code_spans():
    import book as builder  # lessons/book.py

    store = {}
    text = builder.math_to_placeholders("cost $x^2$ and `$HOME` and $$\\frac{a}{b}$$", store)
    assert "`$HOME`" in text and "$" not in text.replace("`$HOME`", "")
    assert len(store) == 2
    display = [v for v in store.values() if 'display="block"' in v]
    assert len(display) == 1 and "<mfrac>" in display[0]


def test_a_new_lesson_joins_by_its_file_alone(tmp_path, monkeypatch):
    """lessons() is a glob: a lessons/13_*.py appears in the book without any other change."""
    import book as builder

    for p in LESSONS[:1]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "13_new.py").write_text("# %% [markdown]\n# # Lesson 13: new\n\n# %%\nprint(1)\n")
    monkeypatch.setattr(builder, "LESSONS_DIR", tmp_path)
    assert [p.name for p in builder.lessons()] == [LESSONS[0].name, "13_new.py"]
