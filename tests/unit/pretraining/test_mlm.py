"""Masking statistics, whole-word masking, fixed masks and perplexity."""

import math

import pytest
import torch
from datasets import Dataset

from llmbook.models import load_tokenizer
from llmbook.pretraining import (
    BertForSparseMaskedLM,
    MaskingCollator,
    fill_mask,
    fixed_mask_dataset,
    mask_tokens,
    masked_token_accuracy,
    masking_table,
    perplexity,
    sparse_decoding,
    special_tokens_mask,
    tokenize_for_mlm,
)
from llmbook.training import IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def encoded(tokenizer):
    texts = ["an unbelievably gorgeous film with a forgettable plot"] * 400
    return tokenize_for_mlm(Dataset.from_dict({"text": texts}), tokenizer, max_length=32)


def test_masking_statistics(tokenizer):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (400, 128))
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    masked, labels = mask_tokens(ids, tokenizer, generator=generator)
    selected = labels != IGNORE_INDEX
    assert selected.float().mean().item() == pytest.approx(0.15 * 126 / 128, abs=0.005)
    as_mask = (masked == tokenizer.mask_token_id) & selected
    unchanged = (masked == ids) & selected
    n = selected.sum().item()
    assert as_mask.sum().item() / n == pytest.approx(0.8, abs=0.01)
    assert unchanged.sum().item() / n == pytest.approx(0.1, abs=0.01)
    assert torch.equal(labels[selected], ids[selected])  # labels are the original tokens
    assert torch.equal(masked[~selected], ids[~selected])  # nothing else changes


def test_special_tokens_are_never_masked(tokenizer, encoded):
    batch = MaskingCollator(tokenizer, probability=0.9, seed=0)([encoded[i] for i in range(64)])
    special = special_tokens_mask(batch["input_ids"], tokenizer)
    originally_special = torch.isin(
        batch["input_ids"], torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id,
                                          tokenizer.pad_token_id]))
    assert (batch["labels"][originally_special] == IGNORE_INDEX).all()
    assert (batch["input_ids"][:, 0] == tokenizer.cls_token_id).all()
    assert special.any()


def test_whole_word_masking_masks_every_piece_of_a_word(tokenizer, encoded):
    collate = MaskingCollator(tokenizer, whole_word=True, seed=1)
    features = [encoded[i] for i in range(200)]
    batch = collate(features)
    word_ids = torch.tensor([f["word_ids"] for f in features])
    selected = batch["labels"] != IGNORE_INDEX
    pieces_per_word = {}
    for row, words in zip(selected, word_ids, strict=True):
        for word in set(words[words >= 0].tolist()):
            flags = row[words == word]
            assert flags.all() or not flags.any(), "a word was partly masked"
            pieces_per_word[word] = len(flags)
    assert max(pieces_per_word.values()) > 1  # the sentence has multi-piece words
    assert 0.08 < selected.float().sum().item() / (word_ids >= 0).sum().item() < 0.25


def test_fixed_masks_are_identical_across_runs(tokenizer, encoded):
    first = fixed_mask_dataset(encoded.select(range(50)), tokenizer, seed=3)
    second = fixed_mask_dataset(encoded.select(range(50)), tokenizer, seed=3)
    other = fixed_mask_dataset(encoded.select(range(50)), tokenizer, seed=4)
    assert first["input_ids"] == second["input_ids"] and first["labels"] == second["labels"]
    assert first["labels"] != other["labels"]
    batch = MaskingCollator(tokenizer)([first[i] for i in range(4)])
    assert torch.equal(batch["labels"][0, : len(first[0]["labels"])],
                       torch.tensor(first[0]["labels"]))


def test_perplexity_and_accuracy():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(20)) == pytest.approx(20)
    assert masked_token_accuracy([1, 2, 3, 4], [1, 2, 0, 0]) == {"accuracy": 0.5}


def test_bad_probability(tokenizer):
    with pytest.raises(ValueError):
        mask_tokens(torch.ones(1, 4, dtype=torch.long), tokenizer, probability=1.5)


def test_masking_table_describes_each_selected_position(tokenizer):
    ids = torch.tensor(tokenizer("a quietly moving film about grief")["input_ids"])
    masked, labels = ids.clone(), torch.full_like(ids, IGNORE_INDEX)
    labels[1], labels[2], labels[3] = ids[1], ids[2], ids[3]
    masked[1], masked[2] = tokenizer.mask_token_id, 2000
    table = masking_table(tokenizer, ids, masked, labels)
    assert table["action"].tolist() == ["replaced by [MASK]", "replaced by a random token",
                                        "kept"]
    assert table["token"].tolist()[0] == "a"


def test_fill_mask_ranks_the_vocabulary(tiny_bert_config, tokenizer):
    from transformers import BertForMaskedLM

    model = BertForMaskedLM(tiny_bert_config())
    guesses = fill_mask(model, tokenizer, "a [MASK] film", top_k=3)
    assert len(guesses) == 3 and all(isinstance(g, str) for g in guesses)
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_mask(model, tokenizer, "no mask here")


def test_hand_computed_losses_equal_the_models_losses(tiny_bert_config, tokenizer):
    import torch.nn.functional as F
    from transformers import BertForMaskedLM, BertForSequenceClassification

    config = tiny_bert_config(num_labels=2)
    batch = tokenizer(["a fine film", "an utterly dull and lifeless sequel"], padding=True,
                      return_tensors="pt", return_token_type_ids=False)
    masked, labels = mask_tokens(batch["input_ids"], tokenizer, probability=0.5,
                                     generator=torch.Generator().manual_seed(0))
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        out = model(input_ids=masked, attention_mask=batch["attention_mask"], labels=labels)
    keep = labels != IGNORE_INDEX
    log_probs = F.log_softmax(out.logits, dim=-1)[keep]
    by_hand = -log_probs.gather(1, labels[keep].unsqueeze(1)).mean()
    torch.testing.assert_close(out.loss, by_hand)

    classifier = BertForSequenceClassification(config).eval()
    y = torch.tensor([1, 0])
    with torch.no_grad():
        out = classifier(**batch, labels=y)
    by_hand = -F.log_softmax(out.logits, dim=-1)[torch.arange(2), y].mean()
    torch.testing.assert_close(out.loss, by_hand)


def test_sparse_decoding_gives_the_same_loss_and_gradients(tiny_bert_config, tokenizer, encoded,
                                                            tmp_path):
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    config = tiny_bert_config(num_hidden_layers=2,
                        num_attention_heads=4, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    dense = BertForMaskedLM(config).train()
    sparse = sparse_decoding(BertForMaskedLM(config).train())
    sparse.load_state_dict(dense.state_dict())
    assert isinstance(sparse, BertForSparseMaskedLM)
    batch = MaskingCollator(tokenizer, seed=0)(
        [{k: row[k] for k in ("input_ids", "attention_mask")} for row in encoded])
    dense_loss, sparse_out = dense(**batch).loss, sparse(**batch)
    selected = int((batch["labels"] != -100).sum())
    assert sparse_out.logits.shape == (selected, len(tokenizer))  # only the labelled positions
    assert torch.allclose(sparse_out.loss, dense_loss, atol=1e-5)
    dense_loss.backward()
    sparse_out.loss.backward()
    for (name, a), b in zip(dense.named_parameters(), sparse.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    sparse.eval()  # evaluation: every position, as BertForMaskedLM
    assert sparse(**batch).logits.shape == (*batch["input_ids"].shape, len(tokenizer))
    sparse.save_pretrained(tmp_path)
    assert type(sparse) is BertForSparseMaskedLM
    assert '"BertForMaskedLM"' in (tmp_path / "config.json").read_text()
