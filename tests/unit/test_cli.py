"""The command line on a tiny fine-tuned model: predict and evaluate on files, bad rows."""

import json
import subprocess
import sys

import pytest

from llmbook.cli import main
from llmbook.data import LABEL_NAMES
from llmbook.data.rows import read_rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_classifier_dir):
    return tiny_classifier_dir(tmp_path_factory.mktemp("model"), layers=1, heads=2)


def test_predict_texts(model_dir, capsys):
    assert main(["predict", "--model", str(model_dir), "a gem", "a mess"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["a gem", "a mess"]
    assert all(r["predicted_label"] in LABEL_NAMES and 0.5 <= r["predicted_score"] <= 1
               for r in rows)


def test_predict_file_skips_bad_rows_and_names_their_lines(model_dir, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine", "id": 7}\nnot json\n{"text": ""}\n{"txt": "x"}\n'
                      '{"text": 3}\n\n{"text": "also fine"}\n')
    output = tmp_path / "out.jsonl"
    status = main(["predict", "--model", str(model_dir), "--input", str(source),
                   "--output", str(output)])
    assert status == 1
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["fine", "also fine"]
    assert rows[0]["id"] == 7 and "predicted_score" in rows[0]
    err = capsys.readouterr().err
    for message in (":2: skipped: invalid JSON", ":3: skipped: 'text' is empty",
                    ":4: skipped: missing 'text' field", ":5: skipped: 'text' must be a string"):
        assert message in err


def test_predict_csv(model_dir, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('text,id\n"good, really",1\n,2\n')
    output = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(model_dir), "--input", str(source),
                 "--output", str(output)]) == 1
    assert [json.loads(x)["text"] for x in output.read_text().splitlines()] == ["good, really"]


def test_evaluate_writes_a_report(model_dir, tmp_path, capsys):
    source = tmp_path / "labeled.jsonl"
    source.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "negative"}\n'
                      '{"text": "c", "label": "maybe"}\n{"text": "d", "label": 0}\n')
    report = tmp_path / "report.json"
    status = main(["evaluate", "--model", str(model_dir), "--input", str(source),
                   "--report", str(report)])
    assert status == 1  # one bad label
    data = json.loads(report.read_text())
    assert data["n"] == 3 and data["skipped_rows"] == 1
    assert 0 <= data["accuracy"] <= 1 and len(data["confusion_matrix"]) == 2
    assert "accuracy" in capsys.readouterr().out


def test_clear_errors(model_dir, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path), "x"]) == 2
    assert "not a model directory" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="jsonl or .csv"):
        list(read_rows(tmp_path / "in.txt"))
    with pytest.raises(SystemExit, match="not both or neither"):
        main(["predict", "--model", str(model_dir)])


def test_finetune_accepts_a_parameter_efficient_method(tmp_path, capsys):
    from llmbook.cli import main
    from llmbook.models import load_for_inference

    out = tmp_path / "lora"
    assert main(["finetune", "--profile", "smoke", "--method", "lora", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert (out / "adapter_model.safetensors").exists()
    _, model = load_for_inference(out)  # base model + the adapter, for inference
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert main(["predict", "--model", str(out), "A gem."]) == 0


def test_distil_writes_a_shallower_student_and_rejects_bad_layers(tiny_classifier_dir, tmp_path,
                                                                  capsys):
    from llmbook.models import load_for_inference

    teacher = tiny_classifier_dir(tmp_path / "teacher", layers=2)
    out = tmp_path / "student"
    assert main(["distil", "--teacher", str(teacher), "--profile", "smoke", "--layers", "1",
                 "--transfer", "16", "--out", str(out)]) == 0
    assert "1-layer student: validation accuracy" in capsys.readouterr().out
    _, student = load_for_inference(out)
    assert student.config.num_hidden_layers == 1
    for bad, message in (("0,5", "keep must be increasing"), ("a,b", "comma-separated")):
        assert main(["distil", "--teacher", str(teacher), "--profile", "smoke",
                     "--layers", bad, "--out", str(tmp_path / bad)]) == 2
        assert message in capsys.readouterr().err


def test_bench_is_a_subcommand_and_python_m_llmbook_bench_still_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0 and "finetune" in capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "llmbook.bench", "nonsense"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "invalid choice: 'nonsense'" in done.stderr
