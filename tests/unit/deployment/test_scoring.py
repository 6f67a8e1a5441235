"""``llmbook predict`` and ``llmbook evaluate`` on an export directory (ONNX, int8 or not) as on
the PyTorch model it came from; a directory that is neither gets one line and exit 2."""

import json

import numpy as np
import pytest

from llmbook.cli import main
from llmbook.deployment import (
    MANIFEST,
    ModelDirError,
    evaluate_rows,
    export_model,
    load_scorer,
    model_dir_kind,
)

POSITIVE = ["a gem", "the best film of the year by far", "warm, funny and wise", "I loved it",
            "a triumph of acting and of writing", "fine", "worth every minute", "great fun"]
NEGATIVE = ["two hours I will never get back", "meh", "not good, not bad, just long",
            "a mess from start to finish", "dull", "the plot makes no sense at all",
            "I walked out", "badly acted and badly written"]
ROWS = ([{"text": t, "label": 1} for t in POSITIVE] + [{"text": t, "label": 0} for t in NEGATIVE])


@pytest.fixture(scope="module")
def dirs(tiny_classifier_dir, tmp_path_factory):
    """The tiny PyTorch classifier and its fp32 and int8 ONNX exports.  Its weights are drawn
    wider than BERT's (initializer_range 0.2, not 0.02), so that its predictions are not all
    ties at 0.5 that any rounding would flip."""
    model = tiny_classifier_dir(tmp_path_factory.mktemp("torch"), initializer_range=0.2)
    fp32 = export_model(model, tmp_path_factory.mktemp("onnx"))
    int8 = export_model(model, tmp_path_factory.mktemp("onnx-int8"), quantize="int8")
    return {"torch": model, "onnx": fp32, "int8": int8}


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "labeled.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def _evaluate(model_dir, labeled, report, capsys):
    assert main(["evaluate", "--model", str(model_dir), "--input", str(labeled),
                 "--report", str(report)]) == 0
    assert "accuracy" in capsys.readouterr().out
    return json.loads(report.read_text())


def test_kinds(dirs):
    assert [model_dir_kind(dirs[k]) for k in ("torch", "onnx", "int8")] == [
        "torch", "export", "export"]


def test_evaluate_on_an_export_gives_the_pytorch_models_metrics(dirs, labeled, tmp_path, capsys):
    reports = {kind: _evaluate(directory, labeled, tmp_path / f"{kind}.json", capsys)
               for kind, directory in dirs.items()}
    keys = set(reports["torch"])
    assert keys >= {"model", "input", "skipped_rows", "accuracy", "macro_f1",
                    "confusion_matrix", "n", "backend"}
    for kind in ("onnx", "int8"):
        assert set(reports[kind]) == keys and reports[kind]["n"] == len(ROWS)
        assert reports[kind]["backend"] == "onnx"
    assert reports["torch"]["backend"] == "torch"
    # fp32 ONNX Runtime: the same predictions, so the same metrics (well within 0.5 points)
    assert reports["onnx"]["confusion_matrix"] == reports["torch"]["confusion_matrix"]
    assert abs(reports["onnx"]["accuracy"] - reports["torch"]["accuracy"]) <= 0.005
    # int8 rounds the weights: on a random model one near-tie may flip (1 row = 6 points here);
    # the 0.5-point bound is a property of a trained model (chapter 14), not of this one
    assert abs(reports["int8"]["accuracy"] - reports["torch"]["accuracy"]) <= 1 / len(ROWS)


def test_predict_on_an_export_gives_the_same_rows(dirs, tmp_path):
    outputs = {}
    for kind in ("torch", "onnx"):
        out = tmp_path / f"{kind}.jsonl"
        assert main(["predict", "--model", str(dirs[kind]), "--output", str(out),
                     *[row["text"] for row in ROWS]]) == 0
        outputs[kind] = [json.loads(line) for line in out.read_text().splitlines()]
    assert ([r["predicted_label"] for r in outputs["onnx"]]
            == [r["predicted_label"] for r in outputs["torch"]])
    np.testing.assert_allclose([r["predicted_score"] for r in outputs["onnx"]],
                               [r["predicted_score"] for r in outputs["torch"]], atol=1e-4)
    assert list(outputs["onnx"][0]) == list(outputs["torch"][0]) == [
        "text", "predicted_label", "predicted_score"]
    int8 = load_scorer(dirs["int8"]).predict([row["text"] for row in ROWS])[:, 1]
    fp32 = np.array([r["predicted_score"] if r["predicted_label"] == "positive"
                     else 1 - r["predicted_score"] for r in outputs["torch"]])
    # the same model, its weights rounded to int8: on this random tiny model int8's error per
    # text depends on the CPU's int8 kernels (0.10 at worst on an AMD EPYC without AVX-512,
    # mean 0.04, correlation 0.84), so the check is on the whole set; a broken export scores
    # at random
    assert np.corrcoef(int8, fp32)[0, 1] > 0.5
    assert np.abs(int8 - fp32).mean() < 0.1


def test_scores_are_batched_and_in_input_order(dirs):
    texts = [row["text"] for row in ROWS]
    whole = load_scorer(dirs["onnx"]).predict(texts)
    batched = load_scorer(dirs["onnx"], batch_size=3).predict(texts)
    np.testing.assert_allclose(batched, whole, atol=1e-5)
    assert load_scorer(dirs["onnx"]).predict([]).shape == (0, 2)
    metrics = evaluate_rows(load_scorer(dirs["torch"]), ROWS)
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"] == len(ROWS)


def test_evaluate_writes_no_report_unless_asked(dirs, tmp_path, capsys):
    source = tmp_path / "labeled.jsonl"
    source.write_text('{"text": "a gem", "label": 1}\n{"text": "dull", "label": 0}\n')
    assert main(["evaluate", "--model", str(dirs["onnx"]), "--input", str(source)]) == 0
    assert "report" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labeled.jsonl"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_a_directory_that_is_neither_gets_one_line_and_exit_2(dirs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text((dirs["torch"] / "config.json").read_text())
    for directory, missing in ((empty, "no config.json and no model.safetensors"),
                               (config_only, "no model.safetensors")):
        for command in (["predict", "--model", str(directory), "a gem"],
                        ["evaluate", "--model", str(directory), "--input", "unused.jsonl"]):
            if command[0] == "evaluate":
                source = tmp_path / "unused.jsonl"
                source.write_text('{"text": "a gem", "label": 1}\n')
                command[-1] = str(source)
            assert main(command) == 2
            err = _one_error_line(capsys)
            assert missing in err and "llmbook finetune --out" in err
            assert "no model.onnx with manifest.json" in err and "llmbook export" in err
    assert main(["predict", "--model", str(tmp_path / "absent"), "x"]) == 2
    assert "does not exist" in _one_error_line(capsys)


def test_an_export_without_its_manifest_is_refused(dirs, tmp_path, capsys):
    copy = tmp_path / "export"
    copy.mkdir()
    for path in dirs["onnx"].iterdir():
        if path.name != MANIFEST:
            (copy / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ModelDirError, match="has no manifest.json"):
        load_scorer(copy)
    assert main(["predict", "--model", str(copy), "x"]) == 2
    assert "llmbook export" in _one_error_line(capsys)
