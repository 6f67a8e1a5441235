"""Distillation into a shallower student (chapter 14)."""

import pytest
import torch
from datasets import Dataset

from llmbook.core import get_profile
from llmbook.data import load_sentiment, tokenize_dataset
from llmbook.deployment import (
    Distiller,
    DistilSpec,
    distil,
    distillation_loss,
    drop_layers,
    encoder_layers,
)
from llmbook.models import load_for_inference
from llmbook.training import TrainConfig, train


@pytest.fixture(scope="module")
def teacher_dir(tiny_classifier_dir, tmp_path_factory):
    return tiny_classifier_dir(tmp_path_factory.mktemp("teacher"), layers=4)


def test_drop_layers_keeps_the_chosen_trained_layers(teacher_dir):
    _, teacher = load_for_inference(teacher_dir)
    student = drop_layers(teacher, [0, 3])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    kept, original = encoder_layers(student), encoder_layers(teacher)
    for new, old in zip(kept, (original[0], original[3]), strict=True):
        for a, b in zip(new.parameters(), old.parameters(), strict=True):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # a copy, same values
    for bad in ([], [1, 0], [0, 0], [4], [-1]):
        with pytest.raises(ValueError, match="keep must be increasing"):
            drop_layers(teacher, bad)


def test_distillation_loss_is_zero_on_agreement_and_matches_the_definition():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 2), torch.randn(8, 2)
    assert distillation_loss(teacher, teacher, 2.0).item() == pytest.approx(0, abs=1e-7)
    p = torch.softmax(teacher / 2, -1)
    expected = 4 * (p * (p.log() - torch.log_softmax(student / 2, -1))).sum(-1).mean()
    assert distillation_loss(student, teacher, 2.0).item() == pytest.approx(
        expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        Distiller(torch.nn.Identity(), temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        Distiller(torch.nn.Identity(), alpha=1.5)


def test_distiller_mixes_in_cross_entropy_on_the_labelled_examples_only(teacher_dir):
    from torch.nn.functional import cross_entropy

    tokenizer, model = load_for_inference(teacher_dir)
    batch = tokenizer(["a fine film", "dull", "loved it", "meh"], padding=True,
                      return_tensors="pt", return_token_type_ids=False)
    teacher = 3 * torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, -100, 0, -100])
    wrapped = Distiller(model, temperature=2.0, alpha=0.3).eval()
    with torch.inference_mode():
        logits = model(**batch).logits
        kd = distillation_loss(logits, teacher, 2.0)
        mixed = wrapped(**batch, labels=labels, teacher_logits=teacher).loss
        unlabelled = wrapped(**batch, labels=torch.full((4,), -100), teacher_logits=teacher).loss
        validation = wrapped(**batch, labels=torch.tensor([1, 0, 0, 1])).loss
    ce = cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert mixed.item() == pytest.approx((0.3 * kd + 0.7 * ce).item(), rel=1e-5)
    assert unlabelled.item() == pytest.approx(0.3 * kd.item(), rel=1e-5)
    assert validation.item() == pytest.approx(
        cross_entropy(logits, torch.tensor([1, 0, 0, 1])).item(), rel=1e-5)


def test_distiller_fits_the_teacher_logits_it_is_given(teacher_dir):
    tokenizer, model = load_for_inference(teacher_dir)
    texts = list(load_sentiment("rotten_tomatoes")["train"]["text"][:32])
    target = 3 * torch.randn(len(texts), 2, generator=torch.Generator().manual_seed(0))
    data = tokenize_dataset(Dataset.from_dict({"text": texts, "teacher_logits": target.tolist()}),
                            tokenizer, 32)
    student = drop_layers(model, (0, 1))

    def gap() -> float:
        student.eval()
        with torch.inference_mode():
            batch = tokenizer(texts, padding=True, return_tensors="pt",
                              return_token_type_ids=False)
            return distillation_loss(student(**batch).logits, target, 2.0).item()

    before = gap()
    train(Distiller(student, alpha=1.0), tokenizer, data, None,
          TrainConfig(epochs=30, batch_size=8, learning_rate=1e-3, progress=False))
    after = gap()
    assert after < 0.5 * before


def test_distil_trains_a_cached_student_that_reloads(teacher_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBOOK_RUNS", str(tmp_path))
    spec = DistilSpec.from_profile(teacher_dir, "rotten_tomatoes", get_profile("smoke"),
                                          progress=False)
    spec = DistilSpec(**{**spec.__dict__, "keep_layers": (1, 2)})
    run = distil(spec)
    assert not run.cached and run.model_dir.parent == tmp_path
    assert run.metrics["layers"] == 2 and run.metrics["transfer_examples"] == (
        spec.train_size + spec.transfer_size)
    assert 0 <= run.metrics["best_validation"]["accuracy"] <= 1
    _, student = run.load()
    assert len(encoder_layers(student)) == 2
    assert distil(spec).cached
    other = DistilSpec(**{**spec.__dict__, "keep_layers": (0, 3)})
    assert other.cache_config() != spec.cache_config()
