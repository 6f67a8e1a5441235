"""Chapter numbers are file numbers: a ``{doc}`chapter N <NN_name>``` link names the chapter
its text says, and every "chapter N" in the prose, the library and the README is a chapter the
book has (notebook files are numbered in the reading order of ``_toc.yml``)."""

import re
import subprocess
from pathlib import Path

from .test_cross_references import LABEL, _pages

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"\{doc\}`[Cc]hapter[ -](\d+)(?:'s)?\s*<(?:\.\./notebooks/)?(\d+)_[\w]+>`")
MENTION = re.compile(r"\b[Cc]hapters?[ -](\d+)\b")


def _tracked_text() -> dict[str, str]:
    files = subprocess.run(["git", "ls-files", "*.md", "*.ipynb", "*.py", "*.yml", "*.toml"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {name: (ROOT / name).read_text() for name in files
            if (ROOT / name).is_file() and name != "book/references.md"}


def test_files_are_numbered_one_to_n_in_toc_order():
    toc = re.findall(r"notebooks/(\d+)_", (ROOT / "_toc.yml").read_text())
    assert [int(n) for n in toc] == list(range(1, len(CHAPTERS) + 1))


def test_a_chapter_link_names_the_chapter_its_text_says():
    wrong = [(name, said, linked) for name, text in _tracked_text().items()
             for said, linked in LINK.findall(text) if int(said) != int(linked)]
    assert not wrong


def test_every_chapter_mentioned_exists():
    missing = sorted({(name, int(n)) for name, text in _tracked_text().items()
                      for n in MENTION.findall(text) if not 1 <= int(n) <= len(CHAPTERS)})
    assert not missing


# A "chapter N" mention (or a {doc} link to notebook NN) tied to a label -- a {ref}/{numref}
# whose text says "chapter N", one that follows the mention in the same sentence with no other
# chapter named in between, or "chapter N's `label`" -- names a label chapter N's notebook defines.
REF = re.compile(r"\{(?:ref|numref)\}`(?:([^`<]*)<)?([\w-]+)>?`")
NAMED = re.compile(r"\b[Cc]hapters?[ -](\d+)(?:'s)?(?:>?`'s)?\s+`([\w-]+)`")
CHAPTER_OR_LINK = re.compile(r"\{doc\}`[^`]*?(\d\d)_\w+>?`|\b[Cc]hapters?[ -](\d+)\b")
NEARBY = 100  # characters between a mention and the reference it introduces


def _labelled_mentions(text: str, labels: set[str]) -> list[tuple[int, str]]:
    """(chapter number, label) for each reference ``text`` ties to a chapter mention."""
    found = [(int(n), label) for n, label in NAMED.findall(text) if label in labels]
    mentions = [(m.end(), int(m.group(1) or m.group(2))) for m in CHAPTER_OR_LINK.finditer(text)]
    for ref in REF.finditer(text):
        said = MENTION.search(ref.group(1) or "")
        if said:
            found.append((int(said.group(1)), ref.group(2)))
            continue
        before = [(end, n) for end, n in mentions if end <= ref.start()]
        if before and ref.start() - before[-1][0] <= NEARBY and \
                not re.search(r"[.;!?]\s", text[before[-1][0]:ref.start()]):
            found.append((before[-1][1], ref.group(2)))
    return found


def misplaced_labels(pages: dict[str, str], chapter_labels: dict[int, set[str]]):
    """(page, chapter number, label) for each tied reference chapter N does not define."""
    every = set().union(*chapter_labels.values())
    return [(page, n, label) for page, text in pages.items()
            for n, label in _labelled_mentions(text, every)
            if label not in chapter_labels.get(n, set())]


def test_a_reference_next_to_chapter_n_is_a_label_of_chapter_n():
    pages = {path.name: text for path, text in _pages().items()}
    chapter_labels = {int(path.name[:2]): set(LABEL.findall(pages[path.name]))
                      for path in CHAPTERS}
    assert not misplaced_labels(pages, chapter_labels)


def test_the_label_check_catches_a_wrong_chapter():
    labels = {4: {"mlm-loss"}, 9: {"finetune-loop", "finetune-results"}}
    pages = {
        "right.md": "Chapter 9 trains it ({ref}`finetune-loop`); chapter 4's `mlm-loss`.",
        "link.md": "{doc}`../notebooks/04_bert` ({ref}`finetune-loop`)",
        "text.md": "See {ref}`chapter 4's loop <finetune-loop>`.",
        "near.md": "as chapter 4 showed ({ref}`finetune-results`)",
        "named.md": "chapter 9's `mlm-loss` again",
        "far.md": "chapter 4 is long. Then {ref}`finetune-results`; chapter 9 ({ref}`mlm-loss`)",
    }
    assert sorted(misplaced_labels(pages, labels)) == [
        ("far.md", 9, "mlm-loss"), ("link.md", 4, "finetune-loop"), ("named.md", 9, "mlm-loss"),
        ("near.md", 4, "finetune-results"), ("text.md", 4, "finetune-loop")]
