"""Fault injection on ``llmbook predict`` and ``llmbook evaluate`` (issue 21): every class of bad
row is reported with its line number and skipped, the rest of the file is still scored, and
nothing ends in a traceback."""

import json
import subprocess
import sys

import pytest

from llmbook.cli import main

#: (JSONL line, what stderr says about it); the good rows between them must be scored.
BAD_JSONL = [
    (b"not json", "invalid JSON"),
    (b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "JSON nested too deeply"),
    (b'{"text": "x", "extra": ' + b"[" * 40 + b"]" * 40 + b"}", "JSON nested too deeply"),
    (b'{"text": "x", "id": ' + b"9" * 5_000 + b"}", "a number too large to hold"),
    (b'{"text": "x", "id": 1e999}', "a number too large to hold"),
    (b'{"text": "x", "id": NaN}', "NaN is not a number JSON allows"),
    (b'{"text": "caf\xe9 \xff"}', "not valid UTF-8 (byte 0xe9 at column 14)"),
    (b'{"text": "\\ud800 a lone surrogate"}', "'text' holds a lone surrogate (U+D800"),
    ('{"text": "\u200b\u200d\ufeff"}'.encode(), "'text' has only invisible characters"),
    (b'{"text": "  "}', "'text' is empty"),
    (b'{"text": ["a"]}', "'text' must be a string, got list"),
    (b'{"txt": "x"}', "missing 'text' field"),
    (b'{"text": "x", "predicted_label": "positive"}', "has a 'predicted_label' field already"),
    (b'["text"]', "expected an object with a 'text' field, got list"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_classifier_dir):
    return tiny_classifier_dir(tmp_path_factory.mktemp("model"), layers=1, heads=2)


def _interleaved(bad: list[bytes]) -> tuple[bytes, list[str]]:
    """good, bad, good, bad, ..., good: the file and its good texts in order."""
    good = [f"good review {i}" for i in range(len(bad) + 1)]
    lines = [json.dumps({"text": good[0], "id": 0}).encode()]
    for i, line in enumerate(bad, start=1):
        lines += [line, json.dumps({"text": good[i], "id": i}).encode()]
    return b"\n".join(lines) + b"\n", good


def test_each_bad_jsonl_row_is_skipped_with_its_line_and_the_rest_is_scored(
        model_dir, tmp_path, capsys):
    data, good = _interleaved([line for line, _ in BAD_JSONL])
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + data)  # a byte-order mark, too
    assert main(["predict", "--model", str(model_dir), "--input", str(source),
                 "--output", str(output)]) == 1
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["text"] for r in rows] == good
    assert [r["id"] for r in rows] == list(range(len(good)))  # input fields untouched
    assert all(set(r) == {"text", "id", "predicted_label", "predicted_score"} for r in rows)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for index, (_, message) in enumerate(BAD_JSONL):
        line = 2 * index + 2
        assert f"in.jsonl:{line}: skipped: {message}" in err, (line, message, err)
    assert f"{len(BAD_JSONL)} bad row(s) skipped; {len(good)} scored" in err


def test_bad_csv_rows_are_skipped_and_a_byte_order_mark_is_read(model_dir, tmp_path, capsys):
    too_long = b"x" * 200_000  # over csv.field_size_limit(), 131,072 characters
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbftext,id\n" + b"first,1\n" + b'"' + too_long + b'",2\n'
                       + b"third,3\n" + b"bad \xff byte,4\n" + b',5\n' + b'"a, quoted",6\n')
    output = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(model_dir), "--input", str(source),
                 "--output", str(output)]) == 1
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["text"], r["id"]) for r in rows] == [("first", "1"), ("third", "3"),
                                                    ("a, quoted", "6")]
    err = capsys.readouterr().err
    assert "in.csv:3: skipped: unreadable CSV row (field larger than field limit" in err
    assert "in.csv:5: skipped: not valid UTF-8 (byte 0xff in column 'text')" in err
    assert "in.csv:6: skipped: 'text' is empty" in err and "Traceback" not in err


def test_evaluate_maps_labels_through_the_models_own_label2id(model_dir, tmp_path, capsys):
    flipped = tmp_path / "flipped"  # the same weights, its classes named the other way round
    flipped.mkdir()
    for path in model_dir.iterdir():
        (flipped / path.name).write_bytes(path.read_bytes())
    config = json.loads((flipped / "config.json").read_text())
    config.update(id2label={"0": "positive", "1": "negative"},
                  label2id={"positive": 0, "negative": 1})
    (flipped / "config.json").write_text(json.dumps(config))
    texts = ["a gem", "dull", "I loved it", "a mess", "fine"]  # odd: agreement is never 1/2
    names = ["POSITIVE", "negative", "positive", "negative", "Positive"]
    source = tmp_path / "labeled.jsonl"
    source.write_text("".join(json.dumps({"text": t, "label": name}) + "\n"
                              for t, name in zip(texts, names, strict=True))
                      + '{"text": "x", "label": "neutral"}\n{"text": "y", "label": 2}\n')
    predictions = tmp_path / "predicted.jsonl"
    assert main(["predict", "--model", str(flipped), "--input", str(source),
                 "--output", str(predictions)]) == 0
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    agree = sum(r["predicted_label"] == r["label"].lower() for r in rows[:5]) / 5
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(flipped), "--input", str(source),
                 "--report", str(report)]) == 1
    data = json.loads(report.read_text())
    assert data["accuracy"] == pytest.approx(agree) and data["skipped_rows"] == 2
    err = capsys.readouterr().err
    assert "labeled.jsonl:6: skipped: 'label' must be a class id (0-1) or one of the model's " \
           "labels (positive or negative), got 'neutral'" in err
    assert "labeled.jsonl:7: skipped: 'label' must be a class id" in err


def test_truncated_texts_are_counted_and_reported(model_dir, tmp_path, capsys):
    source = tmp_path / "labeled.jsonl"  # the tiny model reads 32 tokens at most
    source.write_text(json.dumps({"text": "a gem " * 40, "label": 1}) + "\n"
                      + json.dumps({"text": "dull", "label": 0}) + "\n")
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(model_dir), "--input", str(source),
                 "--report", str(report)]) == 0
    assert json.loads(report.read_text())["truncated"] == 1
    captured = capsys.readouterr()
    assert "truncated 1" in captured.out
    assert "1 text(s) longer than the model's 32 tokens" in captured.err
    assert main(["predict", "--model", str(model_dir), "a gem " * 40, "ok"]) == 0
    assert "1 text(s) longer than the model's 32 tokens" in capsys.readouterr().err


def test_a_command_line_text_that_is_not_utf8_is_skipped_not_a_traceback(model_dir):
    done = subprocess.run([sys.executable, "-m", "llmbook", "predict", "--model",
                           str(model_dir), b"bad \xff byte", "a gem"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "text 1: skipped: not valid UTF-8 (byte 0xff at character 5)" in done.stderr
    assert [json.loads(x)["text"] for x in done.stdout.splitlines()] == ["a gem"]


def test_an_unwritable_output_is_one_line(model_dir, tmp_path, capsys):
    assert main(["predict", "--model", str(model_dir), "--output", str(tmp_path), "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
