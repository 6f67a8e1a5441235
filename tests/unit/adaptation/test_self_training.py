"""Learning from unlabelled data: pseudo-labels, self-training rounds and R-Drop consistency."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from llmbook.adaptation import (
    DataRecipe,
    FinetuneSpec,
    confident_balanced,
    pseudo_labelled,
    rounds_table,
    self_training_rounds,
    threshold_tradeoff,
    unlabelled_pool,
)
from llmbook.cli import main
from llmbook.core import config_key, get_profile
from llmbook.plots import plot_threshold_tradeoff
from llmbook.training import TrainConfig, rdrop_loss, symmetric_kl

PROBABILITIES = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [0.99, 0.01],
                          [0.1, 0.9], [0.97, 0.03]])


def test_confident_balanced_keeps_each_class_s_most_confident_the_same_number_of_times():
    indices, labels = confident_balanced(PROBABILITIES, 0.9)
    # class 0 has 3 rows >= 0.9 (0, 3, 5), class 1 two (2, 4): the two most confident of each
    assert indices.tolist() == [2, 3, 4, 5] and labels.tolist() == [1, 0, 1, 0]
    assert confident_balanced(PROBABILITIES, 0.985)[0].tolist() == []  # class 1 has none
    with pytest.raises(ValueError, match="a confidence threshold is a probability"):
        confident_balanced(PROBABILITIES, 1.5)


def test_threshold_tradeoff_measures_the_kept_share_and_its_accuracy():
    gold = [0, 1, 1, 0, 1, 0]  # the teacher gets row 1 wrong (0.6 for class 0)
    table = threshold_tradeoff(PROBABILITIES, gold, PROBABILITIES, [0.5, 0.96])
    assert table["validation share kept"].tolist() == [1.0, 0.5]
    assert table["accuracy of kept"].tolist() == [pytest.approx(5 / 6), 1.0]
    # balanced: class 1 is the scarcer one (2 rows at 0.5, 1 at 0.96)
    assert table["pool sentences kept"].tolist() == [4, 2]
    fig = plot_threshold_tradeoff(table)
    assert [ax.get_title() for ax in fig.axes] == ["validation: pseudo-label quality",
                                                   "unlabelled pool: sentences kept"]


def test_symmetric_kl_is_zero_for_equal_logits_and_symmetric():
    a, b = torch.tensor([[2.0, -1.0], [0.0, 0.5]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert symmetric_kl(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert symmetric_kl(a, b).item() == pytest.approx(symmetric_kl(b, a).item())
    assert symmetric_kl(a, b).item() > 0.1


def test_rdrop_adds_a_disagreement_term_only_when_dropout_is_on(tiny_classifier_dir, tmp_path):
    from llmbook.models import load_for_inference

    tokenizer, model = load_for_inference(tiny_classifier_dir(tmp_path, hidden_dropout_prob=0.3))
    batch = dict(tokenizer(["a fine film", "a dull film"], return_tensors="pt", padding=True),
                 labels=torch.tensor([1, 0]))
    model.eval()  # the same network twice: no disagreement, the loss is the cross-entropy
    assert rdrop_loss(model, batch, 5.0).item() == pytest.approx(model(**batch).loss.item())
    model.train()
    torch.manual_seed(0)
    with_term = rdrop_loss(model, batch, 5.0).item()
    torch.manual_seed(0)
    without = rdrop_loss(model, batch, 0.0).item()
    assert with_term > without  # same dropout masks, plus a positive KL
    with pytest.raises(ValueError, match="must be >= 0"):
        rdrop_loss(model, batch, -1.0)


def test_new_options_leave_earlier_cache_keys_alone_and_enter_them_when_set():
    base = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"))
    key = config_key(base.cache_config())
    assert "consistency_weight" not in base.cache_config()["train"]
    assert "teacher" not in base.cache_config()
    rdrop = replace(base, train=replace(base.train, consistency_weight=1.0))
    assert rdrop.cache_config()["train"]["consistency_weight"] == 1.0
    assert config_key(rdrop.cache_config()) != key
    with pytest.raises(ValueError, match="needs both a teacher and unlabelled_size > 0"):
        DataRecipe(teacher="runs/x")
    with pytest.raises(ValueError, match="consistency_weight must be >= 0"):
        TrainConfig(consistency_weight=-0.5)


@pytest.fixture
def spec(tiny_classifier_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBOOK_RUNS", str(tmp_path / "runs"))
    model = tiny_classifier_dir(tmp_path / "tiny")
    return FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"), str(model),
                                     epochs=2, progress=False)


def test_pseudo_labelled_sentences_are_the_confident_balanced_part_of_the_pool(monkeypatch):
    from llmbook.adaptation import pseudo_labels

    pool = unlabelled_pool(6)
    monkeypatch.setattr(pseudo_labels, "pool_probabilities", lambda teacher, size: PROBABILITIES)
    added = pseudo_labelled("a teacher", 6, 0.9)
    assert added["idx"] == [-3, -4, -5, -6]  # pool rows 2-5; negative marks a pseudo-label
    assert added["text"] == pool[2:] and added["label"] == [1, 0, 1, 0]
    assert added.features["label"].names == ["negative", "positive"]


def test_a_round_of_self_training_trains_a_student_on_the_teacher_s_labels(spec):
    runs = self_training_rounds(spec, rounds=1, unlabelled_size=48, threshold=0.5)
    teacher, student = runs
    added = pseudo_labelled(teacher.model_dir, 48, 0.5)  # the teacher's labels, from runs/
    assert student.metrics["train_examples"] == teacher.metrics["train_examples"] + len(added)
    assert student.metrics["spec"]["teacher"] == teacher.metrics["run_key"]
    assert student.metrics["spec"]["unlabelled_size"] == 48
    assert rounds_table(runs)["pseudo-labelled"].tolist() == [0, len(added)]
    again = self_training_rounds(spec, rounds=1, unlabelled_size=48, threshold=0.5)
    assert [run.cached for run in again] == [True, True]


def test_the_command_runs_the_rounds_and_refuses_an_out_directory(spec, capsys):
    args = ["finetune", "--profile", "smoke", "--model", spec.model_name, "--epochs", "2",
            "--self-train", "1", "--unlabelled-size", "48", "--pseudo-threshold", "0.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "round 0: model:" in out and "round 1: model:" in out
    assert main([*args, "--out", "somewhere"]) == 2
    assert "--self-train keeps every round" in capsys.readouterr().err
