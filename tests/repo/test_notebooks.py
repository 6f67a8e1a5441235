"""Repository rules for notebooks: committed without outputs, listed in the book (and in its
introduction), the Colab/Binder set-up cell then the profile first, run in the llmbook
kernel."""

import ast
import json
import posixpath
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in _code_cells(path):
        assert not cell["outputs"] and cell["execution_count"] is None, (
            f"{path.name} has stored outputs: clear them before committing"
        )


SETUP_CELL = (ROOT / "scripts" / "notebook_setup_cell.py").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_sets_up_colab_and_the_next_prints_the_profile(path):
    setup, profile = _code_cells(path)[:2]
    assert "".join(setup["source"]) == SETUP_CELL.rstrip("\n") and \
        setup["metadata"].get("tags") == ["remove-cell"], (
            f"{path.name}: its first code cell is not scripts/notebook_setup_cell.py (tagged "
            "remove-cell): run python scripts/write_setup_cells.py")
    source = "".join(profile["source"])
    assert "get_profile()" in source and "describe()" in source
    assert f'chapter_card("{path.stem}", profile)' in source  # its opening box


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("chapters", []) + entry.get("sections", []))


def test_every_notebook_and_chapter_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = set(_toc_files(toc["parts"])) | {toc["root"]}
    for path in NOTEBOOKS + sorted((ROOT / "book").glob("*.md")):
        assert str(path.relative_to(ROOT).with_suffix("")) in listed, f"{path} not in _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


CHAPTERS = NOTEBOOKS + [ROOT / "book" / "concepts.md"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_ends_with_summary_and_exercises(path):
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    assert "## Summary" in text and "## Exercises" in text
    assert text.index("## Summary") < text.index("## Exercises")


KERNEL = "llmbook"  # registered inside .venv by the Makefile's install step (`make lab` too)


def _kernelspec(path):
    if path.suffix == ".ipynb":
        return json.loads(path.read_text())["metadata"].get("kernelspec", {})
    text = path.read_text()  # a MyST page: YAML front matter between the first two ---
    if not text.startswith("---\n"):
        return None
    return yaml.safe_load(text.split("---\n", 2)[1]).get("kernelspec")


PAGES = NOTEBOOKS + sorted((ROOT / "book").glob("*.md"))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_executed_page_names_the_llmbook_kernel(path):
    # myst-nb (the book build) and nbval start the kernel the page's kernelspec names:
    # "python3" would be whichever Python Jupyter finds first, not necessarily .venv's.
    spec = _kernelspec(path)
    if spec is None and path.suffix == ".md":
        return  # a page without code cells is not executed
    assert spec and spec.get("name") == KERNEL and spec.get("language") == "python", (
        f"{path.name}: kernelspec {spec!r}; set it to {{'name': '{KERNEL}', 'display_name': "
        f"'{KERNEL} (.venv)', 'language': 'python'}}")


DOC_LINK = re.compile(r"\{doc\}`(?:[^`<]*<)?([^`<>]+)>?`")


def test_the_introduction_lists_every_chapter_of_the_toc():
    # book/intro.md's "How the book is organised" must not go stale again: every file of
    # _toc.yml is linked from it, under its part's caption, and every chapter link resolves.
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    intro = ROOT / f"{toc['root']}.md"
    text = intro.read_text()
    linked = {posixpath.normpath(posixpath.join(posixpath.dirname(toc["root"]), target))
              for target in DOC_LINK.findall(text)}
    for part in toc["parts"]:
        assert f"**{part['caption']}**" in text, f"part {part['caption']!r} missing in {intro}"
        missing = [f for f in _toc_files(part["chapters"]) if f not in linked]
        assert not missing, f"{intro.name} does not link {missing} (part {part['caption']!r})"
    listed = set(_toc_files(toc["parts"]))
    assert linked <= listed, f"{intro.name} links pages not in _toc.yml: {linked - listed}"


# Bookkeeping cells -- a batch of glue calls, or nothing but asserts -- stay in the notebook
# (they keep the prose's numbers honest) but are hidden on the site by one of these tags.
HIDING_TAGS = {"remove-input", "hide-input", "hide-cell", "remove-cell"}
GLUE = re.compile(r"\bglue\(")


def _only_asserts(body: list[ast.stmt]) -> bool:
    """Only asserts, possibly inside ``if`` blocks (``if profile.name != "smoke":``) whose
    branches hold only asserts too."""
    return bool(body) and all(
        isinstance(statement, ast.Assert) or (
            isinstance(statement, ast.If) and _only_asserts(statement.body)
            and (not statement.orelse or _only_asserts(statement.orelse)))
        for statement in body)


def _is_bookkeeping(source: str) -> bool:
    if len(GLUE.findall(source)) >= 3:
        return True
    return _only_asserts(ast.parse(source).body)  # comments and blank lines leave nothing


def untagged_bookkeeping_cells(path: Path) -> list[str]:
    """Ids of the code cells of ``path`` that are bookkeeping but carry no hiding tag."""
    return [cell["id"] for cell in _code_cells(path)
            if _is_bookkeeping("".join(cell["source"]))
            and not HIDING_TAGS & set(cell["metadata"].get("tags", []))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_bookkeeping_cells_are_hidden_on_the_site(path):
    untagged = untagged_bookkeeping_cells(path)
    assert not untagged, (
        f"{path.name}: cells {untagged} glue three or more values or only assert: tag them "
        f"with one of {sorted(HIDING_TAGS)} (hide-cell keeps them one click away)")


def test_the_bookkeeping_check_finds_untagged_cells(tmp_path):
    def cell(cell_id, source, tags=None):
        return {"cell_type": "code", "execution_count": None, "id": cell_id,
                "metadata": {"tags": tags} if tags else {}, "outputs": [], "source": source}
    cells = [
        cell("glues", 'glue("a", 1)\nglue("b", 2)\nglue("c", 3)\n'),
        cell("asserts", "# the check\nassert 1 < 2\n\nassert (2 <\n        3)\n"),
        cell("hidden", "assert True\n", ["hide-cell"]),
        cell("removed", 'glue("a", 1)\nglue("b", 2)\nglue("c", 3)\n', ["remove-input"]),
        cell("two-glues", 'glue("a", 1)\nglue("b", 2)\n'),
        cell("logic", "x = 1\nassert x == 1\n"),
        cell("comment", "# nothing to run\n"),
        cell("guarded", 'if profile.name != "smoke":\n    assert 1 < 2\nelse:\n    assert 1\n'),
        cell("guarded-logic", 'if profile.name != "smoke":\n    x = 1\n    assert x\n'),
        {"cell_type": "markdown", "id": "prose", "metadata": {}, "source": "assert it\n"},
    ]
    path = tmp_path / "synthetic.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    assert untagged_bookkeeping_cells(path) == ["glues", "asserts", "guarded"]


# No code cell over 15 lines (the generated set-up cell excepted): a longer one is either
# chapter logic that belongs in the library (with a unit test) or a bookkeeping batch to split.
MAX_CELL_LINES = 15
#: Cells still over the limit, by notebook and cell id, each with what it holds.  Each is to be
#: split or moved to the library without changing what it computes (then checked under nbval).
LONG_CELLS = {
    "01": {"a8f97207": "split checks (asserts) then the sizes glued"},
    "02": {"ab3a384b": "our encoder layer vs the library's, table of gaps"},
    "03": {"893586a2": "loads the MLM and checks its loss by hand",
           "f7b57ef3": "representation-drift loop over two rates"},
    "05": {"694cc70f": "table of the three stages, with glue"},
    "06": {"gpt-03": "the cached CLM run, printed and glued",
           "gpt-05": "causal-LM loss by hand vs model vs library",
           "gpt-23": "training-step timing with glue"},
    "07": {"gen-04": "loads both generators, glues their sizes"},
    "08": {"sft-03": "loss-mask table of one conversation",
           "sft-10": "the judge and the scoring of all three sets",
           "sft-15": "glue batch and paired tests (remove-cell)",
           "sft-19": "comparison table with paired tests"},
    "09": {"c361bf04": "loading the article's setting (bug 8 check)"},
    "10": {"c4061a7b": "trainable-parameter counts per method",
           "a8b7f9f4": "LoRA learning-rate sweep, with glue"},
    "11": {"683dac3d": "test subset and the record helper"},
    "12": {"098198b1": "forgetting table, glue and paired test"},
    "14": {"b4948fb5": "imports, the model and the benchmarks",
           "e42c065d": "glue batch of the variants table"},
    "15": {"d2f27d0f": "export and server start",
           "5c8b6c42": "served vs fp32 probabilities",
           "c06703a2": "tampered-manifest refusal",
           "a4ea1611": "cancelled-stream measurement",
           "e198348d": "glue batch of the streaming load test"},
    "16": {"ch16-04": "airline tweets and the score helper",
           "ch16-05": "abstention threshold, plot and glue",
           "ch16-10": "synthetic stream and alerting",
           "ch16-11": "alert delay and correlation, glue",
           "ch16-15": "genre-tagged reviews and embeddings"},
    "17": {"ch17-04": "integrated-gradients convergence",
           "ch17-07": "attributions of chosen test examples",
           "ch17-15": "failure tags glue batch",
           "ch17-21": "name-swap templates and glue"},
}


def _lines(cell) -> int:
    return len("".join(cell["source"]).splitlines())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_cell_is_over_fifteen_lines(path):
    exempt = LONG_CELLS.get(path.name[:2], {})
    cells = {cell["id"]: _lines(cell) for cell in _code_cells(path)[1:]}  # [0]: set-up cell
    long = {cell_id: n for cell_id, n in cells.items() if n > MAX_CELL_LINES}
    assert set(long) <= set(exempt), (
        f"{path.name}: cells over {MAX_CELL_LINES} lines {long}: move chapter logic into the "
        "library or split a glue/assert batch into tagged cells")
    stale = sorted(set(exempt) - set(long))
    assert not stale, f"{path.name}: {stale} are no longer long: drop them from LONG_CELLS"
