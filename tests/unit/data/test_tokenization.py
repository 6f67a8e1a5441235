import numpy as np
import pytest
from datasets import Dataset

from llmbook.data import token_lengths, tokenize_dataset, truncation_rate
from llmbook.models import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_token_lengths_count_special_tokens(tokenizer):
    lengths = token_lengths(["good", "a truly good film"], tokenizer, batch_size=1)
    assert lengths.tolist() == [3, 6]


def test_truncation_rate():
    assert truncation_rate(np.array([3, 10, 64, 65]), 64) == 0.25
    with pytest.raises(ValueError):
        truncation_rate(np.array([]), 64)


def test_tokenize_dataset_truncates_without_padding(tokenizer):
    ds = Dataset.from_dict({"idx": [0, 1], "text": ["fine", "word " * 100], "label": [1, 0]})
    out = tokenize_dataset(ds, tokenizer, max_length=16)
    assert set(out.column_names) == {"input_ids", "attention_mask", "label"}
    assert [len(ids) for ids in out["input_ids"]] == [3, 16]
    with pytest.raises(ValueError):
        tokenize_dataset(ds, tokenizer, max_length=1)
