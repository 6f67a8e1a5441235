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


def test_a_finished_run_records_what_it_was_made_with_and_a_changed_one_is_reported(tmp_path):
    from llmbook.core import provenance
    from llmbook.core.runs import RunProvenanceWarning

    calls = []
    first = cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    made_with = first.metrics["made_with"]
    assert set(made_with["versions"]) == {"torch", "transformers", "peft"}
    assert made_with["offline"] is True and len(made_with["source_sha256"]) == 64
    assert cached_run("finetune", {"lr": 1e-4}, fake_training(calls)).provenance_changes == []
    record = first.model_dir / METRICS_FILE
    older = {**made_with, "versions": {**made_with["versions"], "torch": "1.0"},
             "source_sha256": "0" * 64}
    record.write_text(json.dumps({**first.metrics, "made_with": older}))
    with pytest.warns(RunProvenanceWarning, match=r"torch 1\.0 \(now .*\): reused as it is"):
        reused = cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    assert reused.cached and len(calls) == 1  # reported, not retrained: the key is unchanged
    assert reused.provenance_changes[0].startswith("torch 1.0 (now ")
    assert reused.provenance_changes[1].startswith("llmbook source 000000000000 (now ")
    assert provenance.provenance_changes(None) == []  # runs from before the record


def test_a_torn_record_is_not_a_finished_run(tmp_path):
    calls = []
    run = cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    (run.model_dir / METRICS_FILE).write_text('{"spec": {"lr": 0.0001}, "tes')  # cut short
    again = cached_run("finetune", {"lr": 1e-4}, fake_training(calls))
    assert not again.cached and len(calls) == 2


def interrupted(directory, spec):
    """What a killed run leaves: a checkpoint and the record of the spec it started with."""
    (directory / "checkpoint").mkdir(parents=True, exist_ok=True)
    (directory / "run_started.json").write_text(json.dumps({"spec": spec}))


def test_an_interrupted_run_is_resumed_only_with_its_own_spec(tmp_path):
    from llmbook.core.runs import RunConflictError

    directory, calls = tmp_path / "out", []
    interrupted(directory, {"lr": 1e-4})
    with pytest.raises(RunConflictError, match=r"another configuration \(lr: 0\.0001 -> 0\.0003"):
        cached_run("finetune", {"lr": 3e-4}, fake_training(calls), out=directory)
    with pytest.raises(RunConflictError, match="pass --resume to continue it"):
        cached_run("finetune", {"lr": 1e-4}, fake_training(calls), out=directory, resume=False)
    assert calls == [] and (directory / "checkpoint").is_dir()  # nothing was lost
    resumed = cached_run("finetune", {"lr": 1e-4}, fake_training(calls), out=directory)
    assert calls == [directory] and not resumed.cached
    assert not (directory / "run_started.json").exists()
    interrupted(directory, {"lr": 1e-4})  # again, and now another spec with force
    forced = cached_run("finetune", {"lr": 3e-4}, fake_training(calls), out=directory,
                        force=True)
    assert forced.metrics["spec"] == {"lr": 3e-4} and not (directory / "checkpoint").exists()


def test_a_write_that_fails_leaves_the_old_file_whole(tmp_path):
    from llmbook.core.durable import atomic_save, atomic_write_text

    path = atomic_write_text(tmp_path / "record.json", "old")

    def torn(temporary):
        temporary.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_save(path, torn)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["record.json"]
