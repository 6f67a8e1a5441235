"""Input files of the command line (``llmbook predict --input``, ``llmbook evaluate``).

A file is ``.jsonl`` (one JSON object per line) or ``.csv`` (with a header); each row carries a
``text`` field and, for evaluation, a ``label`` (0/1 or negative/positive).  A bad row is
reported with its line number and skipped, never a traceback; a file that cannot be read at
all ends the command with a one-line error.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from llmbook.data.corpora import LABEL_NAMES


class RowError(ValueError):
    """A row of an input file that cannot be used."""


def _parse_label(value) -> int:
    if isinstance(value, bool):
        raise RowError(f"'label' must be 0, 1, {' or '.join(LABEL_NAMES)}, got {value!r}")
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in LABEL_NAMES:
        return LABEL_NAMES.index(value.strip().lower())
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value)
    raise RowError(f"'label' must be 0, 1, {' or '.join(LABEL_NAMES)}, got {value!r}")


def _check_row(row, need_label: bool) -> dict:
    if not isinstance(row, dict):
        raise RowError(f"expected an object with a 'text' field, got {type(row).__name__}")
    text = row.get("text")
    if not isinstance(text, str):
        raise RowError("missing 'text' field" if text is None else
                       f"'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RowError("'text' is empty")
    if need_label:
        if "label" not in row:
            raise RowError("missing 'label' field")
        row = {**row, "label": _parse_label(row["label"])}
    return row


def read_rows(path: Path, need_label: bool = False) -> Iterator[tuple[int, dict | RowError]]:
    """``(line number, row or RowError)`` for each row of a ``.jsonl`` or ``.csv`` file."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise SystemExit(f"error: {path}: input must be a .jsonl or .csv file")
    if not path.exists():
        raise SystemExit(f"error: {path}: no such file")
    with open(path, encoding="utf-8", newline="") as handle:
        if suffix == ".csv":
            reader = csv.DictReader(handle)
            if "text" not in (reader.fieldnames or []):
                raise SystemExit(f"error: {path}: the CSV header has no 'text' column")
            for row in reader:
                try:
                    yield reader.line_num, _check_row(row, need_label)
                except RowError as err:
                    yield reader.line_num, err
            return
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, _check_row(json.loads(line), need_label)
            except json.JSONDecodeError as err:
                yield line_number, RowError(f"invalid JSON ({err.msg})")
            except RowError as err:
                yield line_number, err


def good_rows(path: Path, need_label: bool) -> tuple[list[dict], int]:
    """The usable rows of ``path`` and how many were skipped (each reported on stderr)."""
    rows, bad = [], 0
    for line_number, row in read_rows(path, need_label):
        if isinstance(row, RowError):
            print(f"{path}:{line_number}: skipped: {row}", file=sys.stderr)
            bad += 1
        else:
            rows.append(row)
    return rows, bad
