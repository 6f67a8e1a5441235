"""Zero- and few-shot helpers: calibration math, cloze scoring, k-shot sampling (chapter 11)."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertForMaskedLM

from llmbook.adaptation import calibrate, cloze_probs, few_shot_spec
from llmbook.core import get_profile
from llmbook.data import sample_per_class
from llmbook.models import load_tokenizer


def test_calibration_divides_out_the_content_free_prior():
    probs = np.array([[0.7, 0.3], [0.6, 0.4]])
    content_free = np.array([[0.8, 0.2], [0.8, 0.2]])  # the model leans "negative" for no reason
    calibrated = calibrate(probs, content_free)
    # 0.7/0.8 = 0.875 and 0.3/0.2 = 1.5, renormalised
    assert np.allclose(calibrated[0], [0.875 / 2.375, 1.5 / 2.375])
    assert np.allclose(calibrated[1], [0.75 / 2.75, 2.0 / 2.75])
    assert calibrated.argmax(-1).tolist() == [1, 1]  # both flip once the lean is removed
    assert np.allclose(calibrate(content_free, content_free), 0.5)


def test_calibration_with_a_uniform_prior_changes_nothing():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert np.allclose(calibrate(probs, np.array([0.5, 0.5])), probs)


def test_cloze_scores_the_mask_even_for_long_reviews(tiny_bert_config):
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config()).eval()
    texts = ["fine", "word " * 500]  # the second is truncated from its end, mask kept
    probs = cloze_probs(tokenizer, model, texts, max_length=32)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1)


@pytest.fixture
def labelled():
    return Dataset.from_dict({"text": [f"t{i}" for i in range(40)],
                              "label": [0] * 30 + [1] * 10})


def test_k_shot_sampler_is_stratified_and_seed_deterministic(labelled):
    first = sample_per_class(labelled, 4, seed=1)
    assert sorted(first["label"]) == [0] * 4 + [1] * 4
    assert first["text"] == sample_per_class(labelled, 4, seed=1)["text"]
    assert first["text"] != sample_per_class(labelled, 4, seed=2)["text"]


def test_k_shot_sampler_rejects_impossible_requests(labelled):
    with pytest.raises(ValueError, match="fewer than k=11"):
        sample_per_class(labelled, 11)
    with pytest.raises(ValueError, match="positive"):
        sample_per_class(labelled, 0)


def test_few_shot_spec_trains_a_fixed_budget():
    profile = get_profile("cpu")
    small, large = few_shot_spec(profile, 8, 0), few_shot_spec(profile, 128, 0, "lora")
    assert small.data.shots_per_class == 8 and small.train.max_steps == profile.few_shot_min_steps
    assert large.train.max_steps == 4 * 256 // 16 and large.adapter.method == "lora"
    assert small.train.eval_every == small.train.max_steps  # one evaluation, at the end
