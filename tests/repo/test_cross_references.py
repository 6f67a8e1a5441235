"""Every ``{ref}`` names a label that exists, every ``{doc}`` a page that exists (a broken one
is a warning of the full site build, which ``-W`` turns into a failed ``make book``)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABEL = re.compile(r"^\(([\w-]+)\)=\s*$", re.MULTILINE)
REF = re.compile(r"\{ref\}`(?:[^`<]*<)?([\w-]+)>?`")
DOC = re.compile(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`")


def _pages() -> dict[Path, str]:
    """The prose of every page: markdown cells of notebooks, whole MyST pages."""
    pages = {path: path.read_text() for path in sorted((ROOT / "book").glob("*.md"))}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        pages[path] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return pages


def test_every_ref_names_a_label_that_exists():
    pages = _pages()
    labels = {label for text in pages.values() for label in LABEL.findall(text)}
    broken = [(path.name, ref) for path, text in pages.items() for ref in REF.findall(text)
              if ref not in labels]
    assert not broken


def test_every_doc_names_a_page_that_exists():
    broken = []
    for path, text in _pages().items():
        for target in DOC.findall(text):
            base = (path.parent / target) if not target.startswith("/") else ROOT / target[1:]
            if not any(base.with_suffix(s).exists() for s in (".md", ".ipynb")):
                broken.append((path.name, target))
    assert not broken
