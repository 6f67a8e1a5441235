"""llmbook.training.augmentation: EDA operations and masked-LM substitution keep labels and are
repeatable."""

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from transformers import BertForMaskedLM, set_seed

from llmbook.models import load_tokenizer
from llmbook.training import (
    EmbeddingNeighbours,
    MaskedLMSubstituter,
    augment_dataset,
    eda,
    eda_augmenter,
    make_augmenter,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)

TEXTS = ["a gripping and beautifully acted drama about grief",
         "the plot is dull and the jokes fall flat",
         "an uneven but often funny comedy",
         "boring"]
SYNONYMS = {"gripping": ["thrilling"], "drama": ["film"], "dull": ["tedious"],
            "funny": ["amusing"], "comedy": ["farce"], "boring": ["tedious"]}


def synonyms(word):
    return SYNONYMS.get(word, [])


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def dataset():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    return Dataset.from_dict({"text": TEXTS, "label": [1, 0, 1, 0]}, features=features)


@pytest.fixture(scope="module")
def substituter(tiny_bert_config, tokenizer):
    set_seed(0)
    config = tiny_bert_config()
    return MaskedLMSubstituter(BertForMaskedLM(config), tokenizer, probability=0.3)


def test_swap_and_deletion_keep_the_words():
    words = TEXTS[0].split()
    rng = np.random.default_rng(0)
    swapped = random_swap(words, 2, rng)
    assert sorted(swapped) == sorted(words) and swapped != words
    kept = random_deletion(words, 0.5, rng)
    assert 1 <= len(kept) < len(words)
    assert all(w in words for w in kept)
    assert len(random_deletion(["boring"], 0.99, rng)) == 1  # never an empty sentence
    with pytest.raises(ValueError):
        random_deletion(words, 1.0, rng)


def test_replacement_and_insertion_use_synonyms_only():
    words = TEXTS[1].split()
    rng = np.random.default_rng(0)
    replaced = synonym_replacement(words, 5, rng, synonyms)
    assert replaced == ["the", "plot", "is", "tedious", "and", "the", "jokes", "fall", "flat"]
    inserted = random_insertion(words, 2, rng, synonyms)
    assert len(inserted) == len(words) + 2 and inserted.count("tedious") == 2


def test_eda_is_seed_deterministic():
    first = [eda(t, np.random.default_rng(3), synonyms) for t in TEXTS]
    again = [eda(t, np.random.default_rng(3), synonyms) for t in TEXTS]
    assert first == again
    others = [eda(t, np.random.default_rng(4), synonyms) for t in TEXTS]
    assert others != first


def test_augment_dataset_keeps_labels_and_repeats(dataset):
    augmenter = eda_augmenter(synonyms, alpha=0.3)
    augmented = augment_dataset(dataset, augmenter, copies=2, seed=0)
    assert len(augmented) == 3 * len(dataset)
    assert list(augmented["label"]) == list(dataset["label"]) * 3
    assert augmented.features["label"] == dataset.features["label"]
    assert list(augmented["text"][: len(dataset)]) == TEXTS
    assert list(augmented["text"][len(dataset):]) != TEXTS * 2
    assert list(augmented["text"]) == list(augment_dataset(dataset, augmenter, copies=2,
                                                         seed=0)["text"])
    assert list(augmented["text"]) != list(augment_dataset(dataset, augmenter, copies=2,
                                                         seed=1)["text"])
    with pytest.raises(ValueError):
        augment_dataset(dataset, augmenter, copies=0)


def test_embedding_neighbours_are_whole_content_words(tokenizer):
    torch.manual_seed(0)
    embeddings = torch.randn(tokenizer.vocab_size, 8)
    vocab = tokenizer.get_vocab()
    embeddings[vocab["excellent"]] = embeddings[vocab["great"]] * 2  # same direction
    neighbours = EmbeddingNeighbours(tokenizer, embeddings, k=3)
    assert neighbours("great")[0] == "excellent"
    assert len(neighbours("great")) == 3 and "great" not in neighbours("great")
    assert all(w.isalpha() and not w.startswith("#") for w in neighbours("movie"))
    assert neighbours("the") == [] and neighbours("zzzqqq") == []


def test_mlm_substitution_keeps_length_labels_and_is_deterministic(substituter, dataset):
    augmented = augment_dataset(dataset, substituter, seed=0)
    assert list(augmented["label"]) == list(dataset["label"]) * 2
    copies = list(augmented["text"][len(dataset):])
    for original, new in zip(TEXTS, copies, strict=True):
        before, after = original.split(), new.split()
        assert len(before) == len(after)  # one word in, one word out
        changed = [b for b, a in zip(before, after, strict=True) if b != a]
        assert 1 <= len(changed)
        assert all(b.isalpha() and len(b) >= 3 for b in changed)  # content words only
    assert copies == list(augment_dataset(dataset, substituter, seed=0)["text"][len(dataset):])


def test_make_augmenter_checks_its_input():
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_augmenter("backtranslation")
    with pytest.raises(ValueError, match="masked LM"):
        make_augmenter("mlm")
