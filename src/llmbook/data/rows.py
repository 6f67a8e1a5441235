"""Input files of the command line (``llmbook predict --input``, ``llmbook evaluate``; chapters
9 and 15).

A file is ``.jsonl`` (one JSON object per line) or ``.csv`` (with a header; a UTF-8 byte-order
mark is allowed); each row carries a ``text`` field and, for evaluation, a ``label``: one of
the model's label names (mapped through its ``label2id``) or a class id.  A bad row is reported
with its line number and skipped, never a traceback, whatever is wrong with it: bytes that
are not UTF-8, JSON that does not parse or is nested too deeply, a number too large to hold,
a lone surrogate in the text, a CSV field over the ``csv`` module's size limit, a text that is
empty once invisible characters are removed.  A file that cannot be read at all ends the
command with a one-line error.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

#: Deepest nesting of lists and objects a JSON row may have (a text needs none).
MAX_NESTING = 32

#: Columns that ``llmbook predict`` adds to each row; an input row may not carry them.
PREDICTION_FIELDS = ("predicted_label", "predicted_score")

#: Unicode categories that print nothing: controls, format characters (zero-width space and
#: joiners, byte-order marks), separators.
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp"}


class RowError(ValueError):
    """A row of an input file that cannot be used."""


def _parse_label(value, label2id: Mapping[str, int]) -> int:
    """A class id from a label name of the model (any case) or a class id (int or digits)."""
    by_name = {name.lower(): i for name, i in label2id.items()}
    ids = set(label2id.values())
    if isinstance(value, str) and value.strip().lower() in by_name:
        return by_name[value.strip().lower()]
    if isinstance(value, str) and value.strip().isdigit() and int(value.strip()) in ids:
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value in ids:
        return value
    names = " or ".join(sorted(label2id, key=label2id.get))
    raise RowError(f"'label' must be a class id ({min(ids)}-{max(ids)}) or one of the model's "
                   f"labels ({names}), got {str(value)[:40]!r}")


def _surrogate_at(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (not valid Unicode text), else None."""
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return index
    return None


def _is_invisible(text: str) -> bool:
    return all(c.isspace() or unicodedata.category(c) in INVISIBLE_CATEGORIES for c in text)


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise RowError("missing 'text' field" if text is None else
                       f"'text' must be a string, got {type(text).__name__}")
    where = _surrogate_at(text)
    if where is not None:
        raise RowError(f"'text' holds a lone surrogate (U+{ord(text[where]):04X} at character "
                       f"{where}), which is not text any model can read")
    if not text.strip():
        raise RowError("'text' is empty")
    if _is_invisible(text):
        raise RowError("'text' has only invisible characters (zero-width, control)")


def _check_row(row, label2id: Mapping[str, int] | None) -> dict:
    """The row with its label as a class id, or a RowError saying what is wrong with it."""
    if not isinstance(row, dict):
        raise RowError(f"expected an object with a 'text' field, got {type(row).__name__}")
    _check_text(row.get("text"))
    taken = [name for name in PREDICTION_FIELDS if name in row]
    if taken:
        raise RowError(f"has a {taken[0]!r} field already, which predict would overwrite")
    if label2id is not None:
        if "label" not in row:
            raise RowError("missing 'label' field")
        row = {**row, "label": _parse_label(row["label"], label2id)}
    return row


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise RowError(f"a number too large to hold ({literal[:20]}...)")
    return value


def _refuse_constant(name: str):
    raise RowError(f"{name} is not a number JSON allows")


def _nesting(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_row(line: str) -> object:
    """One JSONL line as a value, or a RowError: bytes that are not UTF-8 (decoded as lone
    surrogates), invalid or too deeply nested JSON, numbers too large to hold."""
    where = _surrogate_at(line)
    if where is not None:
        raise RowError(f"not valid UTF-8 (byte 0x{ord(line[where]) - 0xDC00:02x} at column "
                       f"{where + 1})")
    try:
        value = json.loads(line, parse_float=_finite_float, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise RowError(f"invalid JSON ({err.msg})") from None
    except RecursionError:
        raise RowError(f"JSON nested too deeply (more than {MAX_NESTING} levels)") from None
    except RowError:
        raise
    except ValueError as err:  # an integer over Python's digit limit
        raise RowError(f"a number too large to hold ({str(err).split(':')[0]})") from None
    if _nesting(value) > MAX_NESTING:
        raise RowError(f"JSON nested too deeply (more than {MAX_NESTING} levels)")
    return value


def _csv_fields_utf8(row: dict) -> None:
    """A CSV row (read with ``surrogateescape``) whose fields hold bytes that are not UTF-8."""
    for name, value in row.items():
        for field in value if isinstance(value, list) else [value, name]:
            where = None if field is None else _surrogate_at(field)
            if where is not None:
                raise RowError(f"not valid UTF-8 (byte 0x{ord(field[where]) - 0xDC00:02x} in "
                               f"column {name!r})")


class _CountedLines:
    """The lines of a file, counted as the ``csv`` module takes them (its own count lags on
    errors): the line a CSV error is on."""

    def __init__(self, lines: Iterable[str]):
        self.lines, self.count = iter(lines), 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.count += 1
        return line


def _csv_rows(path: Path, handle, label2id) -> Iterator[tuple[int, dict | RowError]]:
    lines = _CountedLines(handle)
    reader = csv.DictReader(lines)
    try:
        header = reader.fieldnames or []
    except csv.Error as err:
        raise SystemExit(f"error: {path}: the CSV header cannot be read ({err})") from None
    if "text" not in header:
        raise SystemExit(f"error: {path}: the CSV header has no 'text' column")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:  # e.g. a field over csv.field_size_limit(): skip its line
            yield lines.count, RowError(f"unreadable CSV row ({err})")
            continue
        try:
            _csv_fields_utf8(row)
            yield reader.line_num, _check_row(row, label2id)
        except RowError as err:
            yield reader.line_num, err


def read_rows(path: Path, label2id: Mapping[str, int] | None = None
              ) -> Iterator[tuple[int, dict | RowError]]:
    """``(line number, row or RowError)`` for each row of a ``.jsonl`` or ``.csv`` file.

    With ``label2id`` (the model's), each row needs a ``label``, returned as its class id.
    Bytes that are not UTF-8 are read as lone surrogates (``surrogateescape``), so one bad
    line is one bad row, not an unreadable file.
    """
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise SystemExit(f"error: {path}: input must be a .jsonl or .csv file")
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file")
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        if suffix == ".csv":
            yield from _csv_rows(path, handle, label2id)
            return
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, _check_row(parse_json_row(line), label2id)
            except RowError as err:
                yield line_number, err


def good_rows(path: Path, label2id: Mapping[str, int] | None = None) -> tuple[list[dict], int]:
    """The usable rows of ``path`` and how many were skipped (each reported on stderr)."""
    rows, bad = [], 0
    for line_number, row in read_rows(path, label2id):
        if isinstance(row, RowError):
            print(f"{path}:{line_number}: skipped: {row}", file=sys.stderr)
            bad += 1
        else:
            rows.append(row)
    return rows, bad


def good_texts(texts: Iterable[str]) -> tuple[list[dict], int]:
    """Texts given on the command line as rows, the bad ones (empty, invisible, bytes that
    are not UTF-8 in an argument) reported on stderr by position and skipped."""
    rows, bad = [], 0
    for position, text in enumerate(texts, start=1):
        try:
            where = _surrogate_at(text)  # an argument's undecodable bytes, surrogate-escaped
            if where is not None and "\udc80" <= text[where] <= "\udcff":
                raise RowError(f"not valid UTF-8 (byte 0x{ord(text[where]) - 0xDC00:02x} at "
                               f"character {where + 1})")
            rows.append(_check_row({"text": text}, None))
        except RowError as err:
            print(f"text {position}: skipped: {err}", file=sys.stderr)
            bad += 1
    return rows, bad
