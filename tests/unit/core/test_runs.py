"""The runs/ cache (llmbook.core.runs): one cached_run for every kind of run, one Run type."""

import json

import pytest

from llmbook.core import METRICS_FILE, Run, cached_json, cached_run, config_key


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBOOK_RUNS", str(tmp_path))


def fake_training(calls):
    """A build that writes what the training loop writes: weights and metrics.json."""
    def build(directory):
        calls.append(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.safetensors").write_bytes(b"weights")
        (directory / METRICS_FILE).write_text(json.dumps({"best_validation": {"accuracy": 0.9}}))
        return {"test": {"accuracy": 0.8}}
    return build


def test_a_finished_run_is_found_by_its_key_and_not_rebuilt():
    calls = []
    first = cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    again = cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    assert (first.cached, again.cached, len(calls)) == (False, True, 1)
    assert again.metrics == first.metrics
    assert first.metrics["spec"] == {"lr": 1e-4}
    assert first.metrics["run_key"] == config_key({"lr": 1e-4})
    assert first.test_metrics == {"accuracy": 0.8} and first.metrics["best_validation"]


def test_another_key_or_force_builds_again():
    calls = []
    cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    other = cached_run("finetune", {"lr": 3e-4}, fake_training(calls))
    forced = cached_run("finetune", {"lr": 1e-4}, fake_training(calls), force=True)
    assert len(calls) == 3 and not other.cached and not forced.cached
    assert other.model_dir != forced.model_dir


def test_an_interrupted_run_without_its_record_is_not_finished(tmp_path):
    directory = tmp_path / "interrupted"
    directory.mkdir()
    (directory / "model.safetensors").write_bytes(b"half")  # no metrics.json written yet
    calls = []
    run = cached_run("finetune", {"lr": 1e-4}, fake_training(calls), out=directory)
    assert calls == [directory] and not run.cached


def test_run_load_uses_its_loader_and_says_when_it_has_none(tmp_path):
    run = Run(tmp_path, {}, cached=True, loader=lambda d: ("tokenizer", d))
    assert run.load() == ("tokenizer", tmp_path)
    with pytest.raises(ValueError, match="no loader"):
        Run(tmp_path, {}, cached=True).load()


def test_cached_json_computes_once_unless_refreshed():
    calls = []

    def compute():
        calls.append(1)
        return {"seconds": len(calls)}

    assert cached_json("bench", {"n": 1}, compute) == {"seconds": 1}
    assert cached_json("bench", {"n": 1}, compute) == {"seconds": 1}
    assert cached_json("bench", {"n": 1}, compute, refresh=True) == {"seconds": 2}
