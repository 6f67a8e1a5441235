import numpy as np
import pytest

from llmbook.models import embed_texts, load_encoder, load_tokenizer, mean_pool

TEXTS = [
    "A wonderful, moving film with superb acting.",
    "ok",
    "The plot drags on for two hours and nothing at all happens; I nearly fell asleep twice.",
    "Dull.",
    "An instant classic that I will happily watch again and again.",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(), load_tokenizer()


def embed(texts, encoder, **kwargs):
    model, tokenizer = encoder
    return embed_texts(texts, model=model, tokenizer=tokenizer, max_length=64, **kwargs)


def test_default_loading_gives_unit_norm_384_wide_rows():
    vectors = embed_texts(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_normalize_false_keeps_raw_mean_pooled_norms(encoder):
    raw = embed(TEXTS, encoder, normalize=False)
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / norms[:, None], embed(TEXTS, encoder), atol=1e-5)


def test_rows_follow_input_order_whatever_the_batching(encoder):
    together = embed(TEXTS, encoder, batch_size=64)
    # batch_size=2 with texts of very different lengths: sorting by length reorders them
    small_batches = embed(TEXTS, encoder, batch_size=2)
    np.testing.assert_allclose(small_batches, together, atol=1e-5)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(embed([text], encoder)[0], together[i], atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(encoder):
    a, b, c = embed(
        [
            "I loved this movie, it was great.",
            "A wonderful film, I really enjoyed it.",
            "The central bank raised interest rates by half a point.",
        ],
        encoder,
    )
    assert a @ b > a @ c + 0.2
    assert a @ b > b @ c + 0.2


def test_truncation_to_max_length(encoder):
    model, tokenizer = encoder
    long_text = "great " * 200
    short = embed_texts([long_text], model=model, tokenizer=tokenizer, max_length=8)
    prefix = embed_texts(["great " * 6], model=model, tokenizer=tokenizer, max_length=8)
    np.testing.assert_allclose(short, prefix, atol=1e-5)  # 8 tokens = [CLS] + 6 words + [SEP]


def test_mean_pool_ignores_padding():
    import torch

    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]


def test_model_is_left_in_its_training_mode(encoder):
    model, _ = encoder
    model.train()
    try:
        embed(["fine"], encoder)
        assert model.training
    finally:
        model.eval()


def test_bad_inputs_give_clear_errors(encoder):
    with pytest.raises(ValueError, match="empty"):
        embed([], encoder)
    with pytest.raises(TypeError, match="single string"):
        embed("just one string", encoder)
    with pytest.raises(TypeError, match="must be a str"):
        embed(["fine", None], encoder)
    with pytest.raises(ValueError, match="positive"):
        embed(["fine"], encoder, batch_size=0)
