"""Each chapter's opening box: the runs/ ledger, the timings folded from it, the card's text."""

import json

import pytest

from llmbook.core import PROFILES, cached_json, cached_run, chapter_card, chapter_timings
from llmbook.core.chapters import LEDGER_FILE, card_text, load_timings


def _row(chapter, kind, key, built, seconds=0.0):
    return {"chapter": chapter, "kind": kind, "key": key, "built": built, "seconds": seconds}


def test_timings_list_the_runs_a_chapter_reuses_from_other_chapters():
    ledger = [_row("09_ft", "finetune", "k1", True, 100.0),
              _row("10_peft", "finetune", "k1", False),
              _row("10_peft", "peft", "k2", True, 30.0),
              _row("10_peft", "peft", "k2", False),  # its own run again: not a reuse
              _row("11_few", "finetune", "k1", False),
              _row("11_few", "finetune", "k1", False),  # listed once
              _row(None, "finetune", "k3", True, 5.0),  # outside any chapter (the CLI)
              _row("11_few", "finetune", "k3", False),  # its builder is unknown: not listed
              _row("99_gone", "finetune", "k1", False)]  # not a timed notebook
    timings = chapter_timings({"09_ft": 120.4, "10_peft": 50.0, "11_few": 7.0}, ledger)
    assert timings["09_ft"] == {"seconds": 120, "reuses": []}
    assert timings["10_peft"]["reuses"] == [{"kind": "finetune", "chapter": "09_ft",
                                              "seconds": 100.0}]
    assert timings["11_few"]["reuses"] == timings["10_peft"]["reuses"]
    assert "99_gone" not in timings


def test_card_says_what_was_measured_and_what_was_not():
    build = {"commit": "abc1234", "date": "2026-12-04", "machine": "2 cores, no GPU",
             "chapters": {"09_ft": {"seconds": 75, "reuses": []},
                          "10_peft": {"seconds": 50, "reuses": [
                              {"kind": "finetune", "chapter": "09_ft", "seconds": 100.0},
                              {"kind": "pretrain", "chapter": "04_bert", "seconds": 30.0}]},
                          "11_few": {"seconds": 5, "reuses": None}}}
    timings = {"cpu": build}
    assert "no clean build of this profile has been timed" in card_text("09_ft", "gpu", timings)
    assert card_text("09_ft", "cpu", timings).endswith(
        "executed in 1 min 15 s in the clean build of `abc1234` (2026-12-04, 2 cores, no GPU)."
        " It trains everything it needs itself.")
    text = card_text("10_peft", "cpu", timings)
    assert "chapter 9's finetune run (1 min 40 s); chapter 4's pretrain run (30 s)" in text
    assert text.endswith("about 2 min 10 s more.")
    assert "was not recorded" in card_text("11_few", "cpu", timings)


def test_cached_runs_write_the_ledger_under_the_current_chapter(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBOOK_RUNS", str(tmp_path))
    monkeypatch.delenv("LLMBOOK_CHAPTER", raising=False)
    card = chapter_card("09_ft", PROFILES["smoke"])
    assert card._repr_markdown_().startswith("> **Running this chapter.** Profile `smoke`")

    def build(directory):
        directory.mkdir(parents=True, exist_ok=True)  # cached_run makes it
        (directory / "model.safetensors").write_bytes(b"")  # a finished run has weights
        (directory / "metrics.json").write_text("{}")
        return {}

    for _ in range(2):
        cached_run("toy", {"size": 1}, build)
    cached_json("bench", {"n": 2}, lambda: [1, 2])
    rows = [json.loads(line) for line in (tmp_path / LEDGER_FILE).read_text().splitlines()]
    assert [(r["chapter"], r["kind"], r["built"]) for r in rows] == [
        ("09_ft", "toy", True), ("09_ft", "toy", False), ("09_ft", "bench", True)]
    assert rows[0]["key"] == rows[1]["key"] and rows[0]["seconds"] >= 0


def test_the_shipped_timings_cover_every_notebook():
    from pathlib import Path

    notebooks = {p.stem for p in (Path(__file__).parents[3] / "notebooks").glob("*.ipynb")}
    build = load_timings()["cpu"]
    assert set(build["chapters"]) == notebooks
    assert all(c["seconds"] > 0 for c in build["chapters"].values())


@pytest.mark.parametrize("seconds, text", [(5, "5 s"), (60, "1 min 0 s"), (1292, "21 min 32 s")])
def test_durations_read_as_minutes_and_seconds(seconds, text):
    build = {"commit": "c", "date": "d", "machine": "m",
             "chapters": {"x": {"seconds": seconds, "reuses": []}}}
    assert f"executed in {text} in" in card_text("x", "cpu", {"cpu": build})
