"""Parameter-efficient methods on a tiny BERT: counts, save/load, merge, AdaLoRA, prefix masks."""

import pytest
import torch
from datasets import Dataset
from transformers import BertForSequenceClassification

from llmbook.adaptation import training_cost
from llmbook.data import tokenize_dataset
from llmbook.models import (
    adalora_ranks,
    adapt,
    count_parameters,
    load_adapted,
    load_tokenizer,
    merge_for_deployment,
    save_record,
    step_hooks,
)
from llmbook.training import TrainConfig, train

HIDDEN, LAYERS, INTERMEDIATE = 32, 2, 64
HEAD = HIDDEN * 2 + 2  # the classifier always trains


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def base_dir(tiny_bert_config, tmp_path_factory, tokenizer):
    """A tiny saved classifier: ``load_adapted`` rebuilds adapters on top of it by path."""
    torch.manual_seed(0)
    config = tiny_bert_config(hidden_size=HIDDEN,
                        num_hidden_layers=LAYERS, num_attention_heads=4,
                        intermediate_size=INTERMEDIATE, num_labels=2)
    directory = tmp_path_factory.mktemp("base")
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def adapted(base_dir, method, **options):
    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(base_dir)
    return adapt(model, method, total_steps=20, **options)


def batch(tokenizer):
    return tokenizer(["a fine, moving film", "dull"], padding=True, return_tensors="pt")


EXPECTED_TRAINABLE = {
    "lora": LAYERS * 2 * 8 * (HIDDEN + HIDDEN),  # r x (in + out) for query and value
    "prompt": 10 * HIDDEN,  # ten virtual token embeddings
    "ia3": LAYERS * (HIDDEN + HIDDEN + HIDDEN + INTERMEDIATE),  # key, value, both output.dense
    "prefix": LAYERS * 2 * 10 * HIDDEN,  # a key and a value per virtual token and layer
}


@pytest.mark.parametrize("method", sorted(EXPECTED_TRAINABLE))
def test_trainable_parameter_counts(base_dir, method):
    trainable, total = count_parameters(adapted(base_dir, method))
    assert trainable == EXPECTED_TRAINABLE[method] + HEAD
    assert trainable < total


def test_full_method_leaves_the_model_alone(base_dir):
    model = BertForSequenceClassification.from_pretrained(base_dir)
    assert adapt(model, "full") is model


def test_unknown_method_is_a_clear_error(base_dir):
    with pytest.raises(ValueError, match="choose one of"):
        adapted(base_dir, "bitfit")


def _perturb(model):
    """Move every trainable tensor away from its initial value (LoRA's B starts at zero)."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn_like(parameter))


def trained(base_dir, method, inputs):
    """An adapted model as if trained (perturbed), in eval mode, and its logits on ``inputs``."""
    model = adapted(base_dir, method)
    _perturb(model)
    model.eval()
    with torch.no_grad():
        return model, model(**inputs).logits


@pytest.mark.parametrize("method", ["lora", "adalora", "prompt", "ia3", "prefix"])
def test_save_and_reload_give_identical_logits(base_dir, tokenizer, tmp_path, method):
    inputs = batch(tokenizer)
    model, expected = trained(base_dir, method, inputs)
    model.save_pretrained(tmp_path)
    save_record(tmp_path, method, str(base_dir))
    reloaded = load_adapted(tmp_path)
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, expected, atol=1e-6)
    # and the trained head really was saved (a fresh head would give other logits)
    fresh = BertForSequenceClassification.from_pretrained(base_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(**inputs).logits, expected, atol=1e-3)


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_merged_model_matches_the_adapter_model(base_dir, tokenizer, method):
    inputs = batch(tokenizer)
    model, expected = trained(base_dir, method, inputs)
    with torch.no_grad():
        merged = merge_for_deployment(model)
        assert isinstance(merged, BertForSequenceClassification)
        assert torch.allclose(merged(**inputs).logits, expected, atol=1e-5)


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_virtual_token_methods_cannot_be_merged(base_dir, method):
    with pytest.raises(ValueError, match="virtual tokens"):
        merge_for_deployment(adapted(base_dir, method))


def test_prefix_tuning_is_padding_invariant(base_dir, tokenizer):
    """The prefix is visible to every token, and padding stays masked out."""
    model = adapted(base_dir, "prefix")
    _perturb(model)
    model.eval()
    alone = tokenizer(["dull"], return_tensors="pt")
    padded = tokenizer(["dull", "a much longer review of a fine, moving film"], padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**alone).logits[0], model(**padded).logits[0], atol=1e-5)
        plain = BertForSequenceClassification.from_pretrained(base_dir).eval()
        assert not torch.allclose(model(**alone).logits, plain(**alone).logits, atol=1e-3)


def test_prefix_tuning_trains_only_the_prefix_and_head(base_dir, tokenizer):
    model = adapted(base_dir, "prefix")
    model(**batch(tokenizer), labels=torch.tensor([1, 0])).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in model.named_parameters() if p.requires_grad}
    assert "prefix" in with_grad and any("classifier" in n for n in with_grad)


def test_adalora_budget_changes_the_ranks(base_dir, tokenizer):
    texts = ["good", "bad", "great fun", "awful mess", "loved it", "hated it"] * 6
    data = Dataset.from_dict({"text": texts, "label": [1, 0] * 18})
    encoded = tokenize_dataset(data, tokenizer, 16)
    model = adapted(base_dir, "adalora", rank=8)  # init rank 12, target rank 4
    before = adalora_ranks(model)
    assert set(before.values()) == {12}
    steps = 20
    train(model, tokenizer, encoded, encoded,
          TrainConfig(max_steps=steps, epochs=1, batch_size=4, learning_rate=1e-2,
                      progress=False, eval_every=steps),
          step_hooks=step_hooks(model))
    after = adalora_ranks(model)
    assert after.keys() == before.keys()
    assert sum(after.values()) < sum(before.values())
    assert sum(after.values()) <= 4 * len(after)  # the final budget: target rank on average
    assert len(set(after.values())) > 1  # the budget went where it mattered most


def test_training_cost_is_measured_in_a_fresh_process():
    cost = training_cost("lora", batch_size=4, max_length=16, steps=1)
    assert cost["peak_mb"] >= cost["loaded_mb"] > 0 and cost["examples_per_second"] > 0
    with pytest.raises(ValueError, match="choose one of"):
        training_cost("bitfit")
