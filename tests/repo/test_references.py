"""references.bib: unique keys, every citation in the book resolves, key titles are right."""

import json
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIB = ROOT / "references.bib"
ENTRY = re.compile(r"^@(\w+)\s*\{\s*([^,\s]+)\s*,", re.MULTILINE)
CITE = re.compile(r"\{cite(?::[\w-]+)?\}`([^`]+)`")


def bib_entries():
    """(type, key, body) for every entry of references.bib, in file order."""
    text = BIB.read_text()
    matches = list(ENTRY.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [(m.group(1).lower(), m.group(2), text[m.end():end])
            for m, end in zip(matches, ends, strict=True)]


def field(body, name):
    """The value of a field (braced, quoted or bare; may span lines), whitespace collapsed and
    inner braces dropped; None when absent."""
    match = re.search(rf"^\s*{name}\s*=\s*", body, re.MULTILINE | re.IGNORECASE)
    if not match:
        return None
    rest = body[match.end():]
    if rest.startswith("{"):
        depth, end = 0, 0
        while end == 0 or depth > 0:
            depth += {"{": 1, "}": -1}.get(rest[end], 0)
            end += 1
        value = rest[1:end - 1]
    elif rest.startswith('"'):
        value = rest[1:rest.index('"', 1)]
    else:
        value = re.match(r"[^,}\s]*", rest).group(0)
    return " ".join(value.replace("{", "").replace("}", "").split())


def book_sources():
    """(name, text) of every page of the book: notebook cells and markdown pages."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path.name, "\n".join("".join(cell["source"]) for cell in cells)
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()


def cited_keys():
    """{key: [pages citing it]} over the whole book."""
    cited = {}
    for name, text in book_sources():
        for group in CITE.findall(text):
            for key in group.split(","):
                cited.setdefault(key.strip(), []).append(name)
    return cited


def test_bib_parses_and_keys_are_unique():
    keys = [key for _, key, _ in bib_entries()]
    assert len(keys) >= 10, "references.bib looks truncated"
    duplicates = [key for key, n in Counter(keys).items() if n > 1]
    assert not duplicates, f"duplicate keys in references.bib: {duplicates}"


def test_every_entry_has_title_author_year():
    for kind, key, body in bib_entries():
        for name in ("title", "author", "year"):
            assert field(body, name), f"{key} ({kind}) lacks a {name}"


def test_every_citation_resolves():
    keys = {key for _, key, _ in bib_entries()}
    cited = cited_keys()
    assert cited, "no {cite} role found in the book"
    missing = {key: pages for key, pages in cited.items() if key not in keys}
    assert not missing, f"cited but not in references.bib: {missing}"


def test_gpt2_and_gpt3_titles_are_not_swapped():
    titles = {key: field(body, "title") for _, key, body in bib_entries()}
    assert titles["brown2020language"] == "Language Models are Few-Shot Learners"
    assert titles["radford2019language"] == "Language Models are Unsupervised Multitask Learners"


def test_parameter_efficient_and_adaptation_papers_are_present():
    entries = {key: body for _, key, body in bib_entries()}
    expected = {
        "li2021prefix": "Prefix-Tuning",
        "lester2021prompt": "The Power of Scale for Parameter-Efficient Prompt Tuning",
        "liu2022ia3": "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper",
        "zhao2021calibrate": "Calibrate Before Use",
        "wei2019eda": "EDA",
        "miyato2017adversarial": "Adversarial Training Methods for Semi-Supervised",
        "allal2025smollm2": "SmolLM2",
        "sundararajan2017axiomatic": "Axiomatic Attribution for Deep Networks",
        "gururangan2020dont": "Don't Stop Pretraining",
    }
    for key, title_start in expected.items():
        assert key in entries, f"{key} missing from references.bib"
        assert field(entries[key], "title").startswith(title_start), (key, title_start)
