"""Training on two processes (``torchrun``, gloo on the CPU) is the one-process run, cut in two.

:mod:`multiprocess_train` runs under ``torchrun`` with 1 and with 2 processes (about a minute on
2 cores, both at once).  With dropout off and the same global batch (16: 8 per process), two
processes must give the losses and the final weights of one within ``TOLERANCE`` (measured:
2e-7 for the losses, 3e-7 for the weights), evaluate exactly as one, see every training example
once per epoch, size the schedule for the steps they make, write from one process only and
resume where they stopped.  ``accelerate launch`` with the repository's config really starts
two processes (``--cpu`` or ``MULTI_CPU`` start one: accelerate expects mpirun for that).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DistributedType
from multiprocess_train import EVAL_FIRST, TRAIN_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("multiprocess_train.py")
ACCELERATE_CONFIGS = ROOT / "deploy" / "accelerate"
TOLERANCE = 1e-5
#: their gradient is zero in exact arithmetic (softmax ignores a constant added to every score),
#: so Adam turns rounding noise into learning-rate-sized steps in either run
NOISE_ONLY = "attention.self.key.bias"


def torchrun(processes: int, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", str(processes), str(SCRIPT), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tiny_classifier_dir, tmp_path_factory):
    """``(one, two)``: what the processes of the 1- and the 2-process run recorded."""
    root = tmp_path_factory.mktemp("multiprocess")
    model = tiny_classifier_dir(root / "model", hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0, initializer_range=0.2)
    launched = [torchrun(1, model, root / "one"), torchrun(2, model, root / "two",
                                                           "--resume-check")]
    for process in launched:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]
    return [[json.loads((root / name / f"rank{rank}.json").read_text()) | {"dir": root / name}
             for rank in range(count)] for name, count in (("one", 1), ("two", 2))]


def training_batches(record: dict) -> list[list[int]]:
    return [batch for batch in record["batches"] if min(batch) < EVAL_FIRST]


def test_two_processes_give_the_losses_and_weights_of_one(runs):
    (one,), (first, second) = runs
    assert first["train_log"] == second["train_log"]  # the logged loss is the global batch's
    assert [row["step"] for row in first["train_log"]] == [row["step"] for row in one["train_log"]]
    losses = [(a["loss"], b["loss"]) for a, b in zip(one["train_log"], first["train_log"],
                                                      strict=True)]
    assert max(abs(a - b) for a, b in losses) < TOLERANCE
    weights_one = torch.load(one["dir"] / "final.pt")
    weights_two = torch.load(first["dir"] / "final.pt")
    gaps = {name: (value - weights_two[name]).abs().max().item()
            for name, value in weights_one.items() if NOISE_ONLY not in name}
    assert max(gaps.values()) < TOLERANCE, max(gaps.items(), key=lambda item: item[1])


def test_each_epoch_the_processes_see_the_training_set_once_in_the_same_batches(runs):
    (one,), (first, second) = runs
    ours, theirs = training_batches(first), training_batches(second)
    assert len(ours) == len(theirs) == len(training_batches(one)) == 12  # 2 epochs x 6 batches
    for epoch in range(2):
        seen = [i for batch in ours[6 * epoch:6 * epoch + 6] + theirs[6 * epoch:6 * epoch + 6]
                for i in batch]
        assert sorted(seen) == list(range(TRAIN_EXAMPLES))
    assert [sorted(a + b) for a, b in zip(ours, theirs, strict=True)] == [
        sorted(batch) for batch in training_batches(one)]


def test_two_process_evaluation_is_exactly_the_one_process_evaluation(runs):
    (one,), processes = runs
    for record in processes:  # 37 examples: the last batch of 5 is cut 3 + 2, none padded in
        untrained = record["untrained"]
        assert untrained["n"] == one["untrained"]["n"] == 37
        for key in ("accuracy", "macro_f1", "confusion_matrix"):
            assert untrained[key] == one["untrained"][key]
        assert untrained["loss"] == pytest.approx(one["untrained"]["loss"], abs=TOLERANCE)
        assert [row["eval_accuracy"] for row in record["eval_log"]] == [
            row["eval_accuracy"] for row in one["eval_log"]]


def test_the_schedule_has_the_steps_the_run_makes_and_the_examples_match(runs):
    (one,), (first, _) = runs
    assert first["total_steps"] == len(first["train_log"]) == one["total_steps"] == 12
    assert [row["lr"] for row in first["train_log"]] == [row["lr"] for row in one["train_log"]]
    assert first["train_log"][-1]["lr"] == 0.0  # linear decay ends at the last step made
    assert first["examples_seen"] == one["examples_seen"] == 2 * TRAIN_EXAMPLES
    metrics = json.loads((first["dir"] / "run" / "metrics.json").read_text())
    assert (metrics["num_processes"], metrics["global_batch_size"],
            metrics["examples_seen"]) == (2, 16, 2 * TRAIN_EXAMPLES)


def test_one_process_writes_the_run(runs):
    (one,), (first, second) = runs
    assert second["writers"] == {}
    assert first["writers"]["finish_run"] == 2  # the run, and the resumed run
    assert one["writers"]["finish_run"] == 1


def test_an_interrupted_two_process_run_resumes_where_it_stopped(runs):
    _, (first, second) = runs
    for record in (first, second):
        assert record["resumed_log"] == record["train_log"]
        assert record["resumed_weight_gap"] < TOLERANCE
        assert record["resumed_examples_seen"] == 2 * TRAIN_EXAMPLES


def test_accelerate_launch_with_the_config_starts_two_processes(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import pathlib\nfrom llmbook.training import launched_accelerator\n"
                     "a = launched_accelerator()\n"
                     f"pathlib.Path({str(tmp_path)!r}, f'rank{{a.process_index}}.txt')"
                     ".write_text(f'{a.num_processes} {a.distributed_type}')\n")
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ACCELERATE_CONFIGS / "multi_process.yaml"), str(probe)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = "MULTI_GPU" if torch.cuda.device_count() >= 2 else "MULTI_CPU"
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == f"2 DistributedType.{expected}"


def test_the_fsdp_and_multi_process_configs_parse():
    fsdp = load_config_from_file(str(ACCELERATE_CONFIGS / "fsdp.yaml"))
    assert fsdp.distributed_type == DistributedType.FSDP
    known = {action.dest for action in launch_command_parser()._actions}
    assert fsdp.fsdp_config and set(fsdp.fsdp_config) <= known
    plain = load_config_from_file(str(ACCELERATE_CONFIGS / "multi_process.yaml"))
    assert (plain.distributed_type, plain.num_processes) == (DistributedType.MULTI_GPU, 2)
