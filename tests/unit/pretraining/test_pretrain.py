"""Pre-training: WordPiece training, a from-scratch smoke run, the CLI writes a usable model."""

import json

import pytest
from transformers import AutoModelForSequenceClassification

from llmbook.cli import main
from llmbook.core import get_profile
from llmbook.pretraining import SCRATCH, PretrainSpec, pretrain, spec_for, train_wordpiece

TEXTS = ["the film was wonderful and the acting superb",
         "a dull, lifeless sequel with a predictable plot",
         "wonderful music, superb cinematography, a predictable ending"] * 50


def test_wordpiece_round_trip():
    tokenizer = train_wordpiece(TEXTS, vocab_size=300)
    assert len(tokenizer) <= 300
    for text in TEXTS[:3]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        assert decoded.replace(" ", "") == text.replace(" ", "")
    assert "wonderful" in tokenizer.get_vocab()  # frequent words get their own entry
    with pytest.raises(ValueError):
        train_wordpiece(TEXTS, vocab_size=50)


def test_wordpiece_ids_do_not_depend_on_the_trainers_tie_order():
    from llmbook.models import load_tokenizer
    from llmbook.pretraining.runs import _batches, with_sorted_vocabulary

    trained = load_tokenizer("minilm").train_new_from_iterator(_batches(TEXTS), vocab_size=300)
    pieces = {text: trained.tokenize(text) for text in TEXTS[:3]}
    special_ids = {t: trained.convert_tokens_to_ids(t) for t in trained.all_special_tokens}
    tokenizer = with_sorted_vocabulary(trained)
    vocab = tokenizer.get_vocab()
    ordinary = sorted((t for t in vocab if t not in special_ids), key=vocab.get)
    assert ordinary == sorted(ordinary, key=lambda t: (t.startswith("##"), t))  # ids by text
    assert {t: vocab[t] for t in special_ids} == special_ids  # [CLS], [MASK]... keep theirs
    for text, before in pieces.items():  # the same pieces, only numbered differently
        assert tokenizer.tokenize(text) == before
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", *before, "[SEP]"]


def test_scratch_config_follows_the_spec():
    tokenizer = train_wordpiece(TEXTS, vocab_size=300)
    config = PretrainSpec(hidden_size=128, layers=3, max_length=64).scratch_config(tokenizer)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (128, 3, 2)
    assert config.vocab_size == len(tokenizer) and config.max_position_embeddings == 64


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return pretrain(spec_for(get_profile("smoke")), out=tmp_path_factory.mktemp("mlm"))


def test_from_scratch_smoke_run_lowers_the_loss(smoke_run):
    metrics = smoke_run.metrics
    assert metrics["after"]["loss"] < metrics["before"]["loss"]
    assert metrics["after"]["perplexity"] < metrics["before"]["perplexity"]
    assert metrics["newly_initialised"] == ["all"] and metrics["spec"]["source"] == SCRATCH
    assert (smoke_run.model_dir / "model.safetensors").exists()


def test_pretrained_dir_is_accepted_by_finetune_loading(smoke_run):
    model = AutoModelForSequenceClassification.from_pretrained(smoke_run.model_dir, num_labels=2)
    assert model.config.hidden_size == get_profile("smoke").scratch_hidden


def test_cli_pretrain_reuses_the_finished_run(smoke_run, capsys):
    assert main(["pretrain", "--from-scratch", "--profile", "smoke",
                 "--out", str(smoke_run.model_dir)]) == 0
    out = capsys.readouterr().out
    assert "(cached)" in out and "perplexity" in out
    assert json.loads((smoke_run.model_dir / "metrics.json").read_text())["after"]


def test_continued_pretraining_keeps_the_source_pooler(tmp_path):
    import torch

    from llmbook.models import load_encoder

    run = pretrain(spec_for(get_profile("smoke"), source="minilm", steps=2, head_warmup_steps=2,
                            corpus_size=64), out=tmp_path)
    assert run.metrics["carried_from_source"] == ["bert.pooler.dense.bias",
                                                  "bert.pooler.dense.weight"]
    assert all(k.startswith("cls.predictions") for k in run.metrics["newly_initialised"])
    classifier, info = AutoModelForSequenceClassification.from_pretrained(
        run.model_dir, num_labels=2, output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    original = load_encoder("minilm").pooler.dense.weight
    torch.testing.assert_close(classifier.bert.pooler.dense.weight, original)
