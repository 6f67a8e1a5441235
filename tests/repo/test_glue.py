"""Every glued value a page shows is glued by the notebook it names (a missing one only shows
up as a warning of the full site build, which ``-W`` turns into a failed ``make book``)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: ``{glue:text}`name``, ``{glue:text}`name:.2f``` (a format) or ``{glue:text}`nb.ipynb::name```
REFERENCE = re.compile(r"\{glue(?::[a-z]+)?\}`(?:([^`:]+\.ipynb)::)?([^`:]+)(?::[^`]*)?`")
GLUE_CALL = re.compile(r"""\bglue\(\s*(f?)(["'])(.+?)\2""")


def _cells(path: Path, kind: str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == kind]


STRING = re.compile(r"""(f?)(["'])(.+?)\2""")
GLUE_BY_VARIABLE = re.compile(r"\bglue\(\s*[A-Za-z_]")


def _pattern(is_f: str, name: str) -> re.Pattern:
    parts = re.split(r"\{[^}]*\}", name) if is_f else [name]
    return re.compile(".+".join(map(re.escape, parts)) + r"\Z")


def glued_names(path: Path) -> list[re.Pattern]:
    """Patterns of the names a notebook glues; an f-string's fields match any text.  A cell
    that glues a name held in a variable (``glue(name, ...)`` over a dict) may glue any
    string literal it contains."""
    patterns = []
    for source in _cells(path, "code"):
        found = STRING if GLUE_BY_VARIABLE.search(source) else GLUE_CALL
        patterns += [_pattern(is_f, name) for is_f, _, name in found.findall(source)]
    return patterns


def _missing(references: list[str], notebook: Path) -> list[str]:
    patterns = glued_names(notebook)
    return [name for name in references if not any(p.match(name) for p in patterns)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_glue_reference_in_a_chapter_is_glued_there(path):
    references = [name for text in _cells(path, "markdown")
                  for notebook, name in REFERENCE.findall(text) if not notebook]
    assert not _missing(references, path)


def test_every_glue_reference_on_a_page_names_a_glued_value():
    for page in sorted((ROOT / "book").glob("*.md")):
        for notebook, name in REFERENCE.findall(page.read_text()):
            if notebook:
                assert not _missing([name], ROOT / "notebooks" / Path(notebook).name), (page, name)


def test_the_check_finds_a_missing_name(tmp_path):
    notebook = tmp_path / "x.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": ['glue(f"acc_{name}", 1)\n', 'glue("n", 2)']},
    ]}))
    assert _missing(["acc_lora", "n", "missing"], notebook) == ["missing"]
