import dataclasses

import pytest

from llmbook.core import PROFILES, get_profile


def test_env_variable_selects_profile(monkeypatch):
    monkeypatch.setenv("LLMBOOK_PROFILE", "cpu")
    assert get_profile().name == "cpu"
    monkeypatch.setenv("LLMBOOK_PROFILE", " Smoke ")
    assert get_profile().name == "smoke"


def test_argument_wins_over_env(monkeypatch):
    monkeypatch.setenv("LLMBOOK_PROFILE", "cpu")
    assert get_profile("gpu").name == "gpu"


def test_default_is_cpu_without_cuda_and_gpu_with_it(monkeypatch):
    import torch

    monkeypatch.delenv("LLMBOOK_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "gpu"


def test_unknown_profile_names_valid_ones(monkeypatch):
    monkeypatch.setenv("LLMBOOK_PROFILE", "laptop")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        get_profile()


def test_profiles_are_frozen_and_ordered_by_size():
    smoke, cpu, gpu = (PROFILES[n] for n in ("smoke", "cpu", "gpu"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.epochs = 10
    assert smoke.train_size < 1_000 and cpu.train_size is None
    assert smoke.max_length < cpu.max_length < gpu.max_length
    assert "max_length" in cpu.describe()


def test_gpu_profile_offline_without_the_hub_model_runs_the_packaged_encoder(monkeypatch):
    from llmbook.core import profiles

    monkeypatch.setenv("LLMBOOK_OFFLINE", "1")
    monkeypatch.setattr(profiles, "hub_model_cached", lambda model_id: False)
    gpu = get_profile("gpu")
    assert gpu.model_name == "minilm" and "bert-base-uncased" in gpu.model_note
    assert "model_note" in gpu.describe() and "model_note" not in get_profile("cpu").describe()
    assert gpu.train_size is None and gpu.max_length == PROFILES["gpu"].max_length  # full scale
    assert max(gpu.distil_layers) < 6  # MiniLM has 6 layers
    # the dry run: the gpu profile gets past model loading with what is packaged
    from llmbook.models import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(gpu.model_name)
    model = load_classifier(num_labels=2, name=gpu.model_name)
    batch = tokenizer(["A gem.", "Two hours I will never get back."], padding=True,
                      truncation=True, max_length=gpu.max_length, return_tensors="pt")
    assert model(**batch).logits.shape == (2, 2)


def test_gpu_profile_keeps_its_hub_model_when_cached_or_online(monkeypatch):
    from llmbook.core import profiles

    monkeypatch.setenv("LLMBOOK_OFFLINE", "1")
    monkeypatch.setattr(profiles, "hub_model_cached", lambda model_id: True)
    assert get_profile("gpu") == PROFILES["gpu"]
    monkeypatch.setenv("LLMBOOK_OFFLINE", "0")
    monkeypatch.setattr(profiles, "hub_model_cached", lambda model_id: False)
    assert get_profile("gpu") == PROFILES["gpu"]
    assert profiles.hub_model_cached("no-such-org/no-such-model") is False
