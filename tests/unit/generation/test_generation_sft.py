"""Instruction-tuning runs of SmolLM2 (part "Generative models"), at the smallest size."""

import pytest

from llmbook.generation.instruction_sets import (
    SUPPORT_SYSTEM,
    parse_sentiment,
    sentiment_conversations,
)
from llmbook.generation.sft import (
    SftSpec,
    generate_answers,
    instruction_tune,
    mixture_sizes,
    sft_conversations,
    support_training,
)

TINY = SftSpec(sentiment_size=8, writing_size=4, support_repeats=0, validation_size=4,
               epochs=1, batch_size=8, max_length=128)


def test_the_mixture_is_disjoint_from_validation():
    spec = SftSpec(sentiment_size=8, writing_size=4, support_repeats=2, validation_size=4)
    train, validation = sft_conversations(spec)
    assert len(train) == sum(mixture_sizes(spec).values()) == 12 + 2 * (30 + 30)
    assert len(validation) == 2 * spec.validation_size
    reviews = lambda conversations: {c[-2]["content"] for c in conversations}  # noqa: E731
    assert reviews(train[:8]).isdisjoint(reviews(validation[:4]))
    with pytest.raises(ValueError, match="method"):
        SftSpec(method="prefix")


def test_support_training_is_closed_then_open_book_and_can_stand_alone():
    closed_only = SftSpec(sentiment_size=0, writing_size=0, support_repeats=1,
                          support_open_book=False, validation_size=4)
    train, _ = sft_conversations(closed_only)
    assert len(train) == 30 and all(c[0]["content"] == SUPPORT_SYSTEM for c in train)
    both = support_training(SftSpec())
    closed, open_book = both[:30], both[30:]
    assert [c[1:] for c in closed] == [c[1:] for c in open_book]  # same questions and answers
    assert all(c[0]["content"].startswith(SUPPORT_SYSTEM + " Knowledge base entry: ")
               and c[-1]["content"] in c[0]["content"] for c in open_book)  # the right entry


def test_a_tiny_lora_run_trains_saves_and_reloads(tmp_path):
    run = instruction_tune(TINY, out=tmp_path / "sft")
    metrics = run.metrics
    assert (run.model_dir / "adapter_config.json").exists() and not run.cached
    assert 0 < metrics["trainable_parameters"] < 0.05 * metrics["parameters"]
    assert 0 < metrics["answer_token_share"] < 0.5  # most tokens are prompt, not learned
    assert metrics["tokens_per_second"] > 0 and len(metrics["eval_log"]) >= 1
    tokenizer, model = run.load()
    answers = generate_answers(model, tokenizer,
                               sentiment_conversations(["A gem.", "Awful."], None),
                               max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert {parse_sentiment(a) for a in answers} <= {0, 1, None}
    assert instruction_tune(TINY, out=tmp_path / "sft").cached


def test_spec_follows_the_profile():
    from llmbook.core import get_profile
    from llmbook.generation.sft import sft_spec_for

    profile = get_profile("cpu")
    lora, full = sft_spec_for(profile, "lora"), sft_spec_for(profile, "full")
    assert (lora.sentiment_size, lora.writing_size, lora.epochs) == (
        profile.sft_sentiment_size, profile.sft_writing_size, profile.sft_epochs)
    assert lora.learning_rate == profile.sft_lora_rate == 10 * full.learning_rate
    assert sft_spec_for(profile, "lora", epochs=1).epochs == 1


def test_llmbook_sft_exports_a_merged_model_that_serves(tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    import torch

    from llmbook.cli import main
    from llmbook.deployment.serving import GenerateRequest, TextGenerator
    from llmbook.generation.sft import load_tuned

    monkeypatch.setattr("llmbook.generation.sft.sft_spec_for",
                        lambda profile, method, **overrides: replace(TINY, method=method,
                                                                     **overrides))
    args = ["sft", "--profile", "smoke", "--out", str(tmp_path / "run"),
            "--export", str(tmp_path / "served")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "held-out loss" in printed and "llmbook serve --generate" in printed
    served = TextGenerator(tmp_path / "served")  # its sha256 manifest checks out
    tokenizer, tuned = load_tuned(tmp_path / "run")
    ids = tokenizer("How do I cancel?", return_tensors="pt").input_ids
    with torch.no_grad():  # merging the adapter changes no prediction
        assert torch.allclose(served.model(ids).logits, tuned(ids).logits, atol=1e-4)
    request = GenerateRequest(prompt="How do I cancel?", max_new_tokens=3)
    assert 1 <= len(list(served.tokens(served.encode(request, 512), request))) <= 3

