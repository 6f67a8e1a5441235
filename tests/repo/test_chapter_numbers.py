"""Chapter numbers are file numbers: a ``{doc}`chapter N <NN_name>``` link names the chapter
its text says, and every "chapter N" in the prose, the library and the README is a chapter the
book has (notebook files are numbered in the reading order of ``_toc.yml``)."""

import re
import subprocess
from pathlib import Path

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
