"""The fine-tuning recipe's bookkeeping: cache keys and the multi-seed summary."""

from dataclasses import replace
from pathlib import Path

import pytest

from llmbook.adaptation import DataRecipe, FinetuneSpec, seed_summary
from llmbook.core import Run, config_key, get_profile
from llmbook.models import AdapterSpec
from llmbook.training import TrainConfig


def _run(seed, validation, test):
    metrics = {"config": {"seed": seed}, "best_validation": {"accuracy": validation},
               "test": {"accuracy": test}}
    return Run(Path("unused"), metrics, cached=True)


def test_seed_summary_gives_mean_and_std_per_model():
    table = seed_summary({"a": [_run(0, 0.8, 0.7), _run(1, 0.9, 0.9)], "b": [_run(0, 0.5, 0.6)]})
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", ("test accuracy", "mean")] == pytest.approx(0.8)
    assert table.loc["a", ("test accuracy", "std")] == pytest.approx(0.1414, abs=1e-4)
    assert table.loc["a", ("validation accuracy", "mean")] == pytest.approx(0.85)


def test_cache_key_ignores_presentation_and_tracks_hyperparameters():
    smoke = get_profile("smoke")
    base = FinetuneSpec.from_profile("rotten_tomatoes", smoke)
    quiet = FinetuneSpec.from_profile("rotten_tomatoes", smoke, progress=False, log_every=99)
    other_lr = FinetuneSpec.from_profile("rotten_tomatoes", smoke, learning_rate=1e-3)
    assert base.cache_config() == quiet.cache_config()
    assert base.cache_config() != other_lr.cache_config()


def test_cache_key_of_a_local_model_uses_its_run_record(tmp_path):
    (tmp_path / "metrics.json").write_text('{"run_key": "abc123"}')
    spec = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"), str(tmp_path))
    assert spec.cache_config()["model_name"] == "abc123"


def test_finished_metrics_requires_weights_and_the_same_spec(tmp_path):
    from llmbook.core import finished_metrics

    (tmp_path / "metrics.json").write_text('{"spec": {"lr": 1}, "test": {}}')
    assert finished_metrics(tmp_path, {"lr": 1}) is None  # no weights yet
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert finished_metrics(tmp_path, {"lr": 1})["spec"] == {"lr": 1}
    assert finished_metrics(tmp_path, {"lr": 2}) is None


def test_options_added_later_enter_the_cache_key_only_when_set(monkeypatch):
    from llmbook.adaptation import ADDED_TRAIN_OPTIONS, FinetuneSpec
    from llmbook.core import drop_unset

    assert drop_unset({"a": 1, "b": 0.0, "c": 2}, {"b": 0.0, "c": 0}) == {"a": 1, "c": 2}
    spec = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"))
    before = spec.cache_config()
    monkeypatch.setitem(ADDED_TRAIN_OPTIONS, "seed", 0)  # pretend `seed` were new
    assert "seed" not in spec.cache_config()["train"]
    changed = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"), seed=1)
    assert changed.cache_config()["train"]["seed"] == 1
    monkeypatch.delitem(ADDED_TRAIN_OPTIONS, "seed")
    assert spec.cache_config() == before


#: Keys computed by the code before the spec's options were grouped into an AdapterSpec and a
#: DataRecipe (commit e276b19): grouping them must not orphan a single run in ``runs/``.
KEYS_BEFORE_GROUPING = {
    "base": "ef2d041b275d", "lora": "1fb4688f9967", "lora_r4": "1b8967891288",
    "shots": "4c8b5344f360", "replay": "c071dab4aa32", "eda": "374b6fe976cf",
    "mlm": "a72379349636", "dropout": "1151572a225b",
}


def test_composed_parts_keep_the_cache_keys_of_the_flat_spec():
    base = FinetuneSpec(task="rotten_tomatoes", model_name="minilm", max_length=64,
                        train_size=None, eval_size=None,
                        train=TrainConfig(epochs=3, batch_size=32, learning_rate=1e-4))
    specs = {
        "base": base,
        "lora": replace(base, adapter=AdapterSpec("lora")),
        "lora_r4": replace(base, adapter=AdapterSpec("lora", rank=4)),
        "shots": replace(base, data=DataRecipe(shots_per_class=8)),
        "replay": replace(base, data=DataRecipe(replay_task="imdb", replay_size=100)),
        "eda": replace(base, data=DataRecipe(augment="eda")),
        "mlm": replace(base, data=DataRecipe(augment="mlm", augment_model="some/model")),
        "dropout": replace(base, dropout=0.3),
    }
    keys = {name: config_key(spec.cache_config()) for name, spec in specs.items()}
    assert keys == KEYS_BEFORE_GROUPING


def test_adapter_spec_refuses_an_unknown_method_in_one_line():
    with pytest.raises(ValueError, match="unknown method 'lorra': choose one of full, lora"):
        AdapterSpec("lorra")
