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
