"""Fold a finished book build's execution seconds and ``runs/ledger.jsonl`` into the timings
file every chapter's opening box reads (``llmbook.core.chapters``).  Run in the built clone:
    .venv/bin/python scripts/write_timings.py PROFILE MACHINE OUT_JSON
(``scripts/book_from_clean_clone.sh`` does, into the source checkout, after a passing build)."""

import datetime
import json
import subprocess
import sys
from pathlib import Path

from jupyter_cache import get_cache

from llmbook.core.chapters import LEDGER_FILE, chapter_timings
from llmbook.core.runs import runs_root


def main(profile: str, machine: str, out: str) -> None:
    cache = get_cache("_build/.jupyter_cache")
    seconds = {Path(r.uri).stem: r.data["execution_seconds"]
               for r in cache.list_cache_records() if r.data.get("execution_seconds") is not None
               and r.uri.endswith(".ipynb")}
    ledger_path = runs_root() / LEDGER_FILE
    ledger = [json.loads(line) for line in ledger_path.read_text().splitlines()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    path = Path(out)
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[profile] = {"commit": commit, "date": datetime.date.today().isoformat(),
                        "machine": machine, "chapters": chapter_timings(seconds, ledger)}
    path.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    print(f"timings of {len(seconds)} notebooks ({profile}, {commit}) written to {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
