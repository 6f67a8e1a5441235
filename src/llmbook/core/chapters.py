"""What running a chapter costs: the box each notebook opens with, and the ledger behind it.

Every notebook's first visible cell calls :func:`chapter_card`: the profile in use, the
seconds the chapter executed for in the last clean build of that profile, and the runs of
other chapters it found in ``runs/`` (with what they cost to train, paid by this chapter when
it runs alone). Nothing in the box is typed: while a book builds, :func:`record_run_use`
appends every use of the ``runs/`` cache to ``runs/ledger.jsonl`` with the chapter that made
it; ``scripts/book_from_clean_clone.sh`` then folds that ledger and the execution seconds into
``timings.json`` (shipped with the package) by :func:`chapter_timings`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from importlib.resources import files

TIMINGS_FILE = "timings.json"
LEDGER_FILE = "ledger.jsonl"
#: set by :func:`chapter_card`: the chapter this kernel (and the processes it starts) runs
CHAPTER_VARIABLE = "LLMBOOK_CHAPTER"


def record_run_use(runs_root, kind: str, key: str, built: bool, seconds: float) -> None:
    """Append one use of the ``runs/`` cache (built now, or reused) to the ledger."""
    row = {"chapter": os.environ.get(CHAPTER_VARIABLE), "kind": kind, "key": key, "built": built,
           "seconds": round(seconds, 1), "time": time.time()}
    runs_root.mkdir(parents=True, exist_ok=True)
    with open(runs_root / LEDGER_FILE, "a") as ledger:  # one short line: appends stay whole
        ledger.write(json.dumps(row) + "\n")


def chapter_timings(seconds: dict[str, float], ledger: Iterable[dict]) -> dict[str, dict]:
    """Per chapter: its execution ``seconds`` and the runs it ``reuses`` that another chapter
    built (``kind``, the building ``chapter``, the build's ``seconds``)."""
    rows = list(ledger)
    built_by = {(r["kind"], r["key"]): r for r in rows if r["built"] and r["chapter"]}
    chapters = {name: {"seconds": round(s), "reuses": []} for name, s in seconds.items()}
    for row in rows:
        builder = built_by.get((row["kind"], row["key"]))
        if row["built"] or row["chapter"] not in chapters or builder is None:
            continue
        reuse = {"kind": row["kind"], "chapter": builder["chapter"],
                 "seconds": builder["seconds"]}
        if builder["chapter"] != row["chapter"] and reuse not in chapters[row["chapter"]]["reuses"]:
            chapters[row["chapter"]]["reuses"].append(reuse)
    return chapters


def load_timings() -> dict:
    """The measured timings shipped with the package: ``{profile: {...}}`` (empty if none)."""
    path = files("llmbook.core") / TIMINGS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _chapter_number(name: str) -> str:
    return name.split("_", 1)[0].lstrip("0")


def card_text(chapter: str, profile_name: str, timings: dict) -> str:
    """The box's Markdown for ``chapter`` (a notebook's file name without ``.ipynb``)."""
    build = timings.get(profile_name)
    text = f"**Running this chapter.** Profile `{profile_name}`"
    if not build or chapter not in build["chapters"]:
        return (text + ": no clean build of this profile has been timed yet "
                "(`scripts/book_from_clean_clone.sh` measures one).")
    measured = build["chapters"][chapter]
    text += (f": it executed in {_duration(measured['seconds'])} in the clean build of "
             f"`{build['commit']}` ({build['date']}, {build['machine']}).")
    reuses = measured.get("reuses")
    if reuses is None:
        return text + " Which other chapters' runs it reuses was not recorded in that build."
    if not reuses:
        return text + " It trains everything it needs itself."
    listed = "; ".join(f"chapter {_chapter_number(r['chapter'])}'s {r['kind']} run "
                       f"({_duration(r['seconds'])})" for r in reuses)
    extra = sum(r["seconds"] for r in reuses)
    return (text + f" It reuses runs other chapters left in `runs/`: {listed}. Run on its own,"
            f" it trains them first: about {_duration(extra)} more.")


class ChapterCard(str):
    """The box's text; a notebook shows it as a Markdown quote."""

    def _repr_markdown_(self) -> str:
        return "> " + self


def chapter_card(chapter: str, profile) -> ChapterCard:
    """The box for ``chapter``; from now on this kernel's ``runs/`` uses are the chapter's."""
    os.environ[CHAPTER_VARIABLE] = chapter
    return ChapterCard(card_text(chapter, profile.name, load_timings()))
