"""Crash safety of the runs cache (issue 21), with real processes on the suite's tiny BERT.

* Two ``llmbook finetune`` processes want the same run at the same moment: exactly one trains,
  the other waits on the lock and reuses the finished run.
* ``kill -9`` in the middle of training (320 steps, a checkpoint at every epoch), then the same
  command again: it resumes from the checkpoint and ends with the metrics and weights of the
  uninterrupted run; a different configuration, or the command without ``--resume``, is
  refused in one line.
* A crash at any write of the final save (an injected failure at each ``os.replace`` in
  turn, and a real SIGKILL while the finished record is renamed into place) never leaves a
  run that looks finished, and the next call finishes it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from llmbook.adaptation.finetune import FinetuneSpec
from llmbook.cli import main
from llmbook.core import METRICS_FILE, cached_run, finished_metrics, get_profile, run_dir
from llmbook.core.durable import directory_lock
from llmbook.models import load_for_inference
from llmbook.training import TrainConfig, TrainResult
from llmbook.training.checkpoint import finish_run, save_model

EPOCHS, LEARNING_RATE = 40, 3e-3  # the smoke profile's 64 reviews, batch 8: 320 steps
KILL_AFTER_STEP = 96


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_classifier_dir):
    return tiny_classifier_dir(tmp_path_factory.mktemp("tiny"), layers=1, heads=2)


def finetune_args(model_dir, *extra) -> list[str]:
    return ["finetune", "--profile", "smoke", "--model", str(model_dir), "--epochs",
            str(EPOCHS), "--lr", str(LEARNING_RATE), "--checkpoint-seconds", "0", *extra]


def start(args, runs, log):
    environment = {**os.environ, "LLMBOOK_RUNS": str(runs), "OMP_NUM_THREADS": "1",
                   "TQDM_DISABLE": "1", "LLMBOOK_PROFILE": "smoke"}
    return subprocess.Popen([sys.executable, "-m", "llmbook", *args], env=environment,
                            stdout=log.with_suffix(".out").open("w"),
                            stderr=log.with_suffix(".err").open("w"))


def _checkpoint_step(out) -> int:
    try:
        return json.loads((out / "checkpoint" / "trainer_state.json").read_text())[
            "state"]["step"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def runs(model_dir, tmp_path_factory):
    """Three processes started at once (their imports overlap): two writers of one cached run,
    both made to wait on its lock, which the test holds until both say they wait; and the run
    that is killed with SIGKILL once it has checkpointed step KILL_AFTER_STEP."""
    root = tmp_path_factory.mktemp("crash")
    spec = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"), str(model_dir),
                                     epochs=EPOCHS, learning_rate=LEARNING_RATE)
    os.environ["LLMBOOK_RUNS"] = str(root / "runs")
    try:
        cached = run_dir("finetune", spec.cache_config())
    finally:
        del os.environ["LLMBOOK_RUNS"]
    killed, logs = root / "killed", [root / "writer1", root / "writer2", root / "killed-run"]
    deadline, processes = time.monotonic() + 900, []

    def watch(until) -> None:
        """Poll until ``until()``, killing the victim once it has checkpointed far enough."""
        while not until():
            if _checkpoint_step(killed) >= KILL_AFTER_STEP and victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
            assert time.monotonic() < deadline, f"timed out: see the logs in {root}"
            time.sleep(0.1)

    try:
        with directory_lock(cached):
            writers = [start(finetune_args(model_dir, "--resume"), root / "runs", log)
                       for log in logs[:2]]
            victim = start(finetune_args(model_dir, "--out", str(killed), "--resume"), root,
                           logs[2])
            processes = [*writers, victim]
            watch(lambda: all("waiting: another process" in log.with_suffix(".err").read_text()
                              for log in logs[:2]))
        watch(lambda: victim.poll() is not None)  # the lock is released: one writer trains
        codes = [p.wait(timeout=900) for p in writers]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return {"root": root, "cached": cached, "killed": killed, "codes": codes,
            "killed_code": victim.returncode,
            "outputs": [log.with_suffix(".out").read_text() for log in logs[:2]]}


def test_two_concurrent_writers_of_one_key_one_trains_the_other_reuses(runs):
    assert runs["codes"] == [0, 0], runs["outputs"]
    cached = [f"model: {runs['cached']} (cached)" in out for out in runs["outputs"]]
    assert sorted(cached) == [False, True], runs["outputs"]
    ledger = [json.loads(line) for line in
              (runs["root"] / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert sorted(row["built"] for row in ledger) == [False, True]
    assert [p.name for p in (runs["root"] / "runs").iterdir() if p.is_dir()] == [
        runs["cached"].name]


def test_kill_9_during_training_then_the_same_command_resumes_to_the_same_metrics(
        runs, model_dir, monkeypatch, capsys):
    out = runs["killed"]
    assert runs["killed_code"] == -signal.SIGKILL, "training ended before the kill"
    assert not (out / METRICS_FILE).exists() or "spec" not in json.loads(
        (out / METRICS_FILE).read_text())  # killed: not finished
    monkeypatch.setenv("LLMBOOK_RUNS", str(runs["root"]))
    assert main(finetune_args(model_dir, "--out", str(out))) == 2  # no --resume: refused
    assert "holds an interrupted run: pass --resume" in capsys.readouterr().err
    assert main(finetune_args(model_dir, "--out", str(out), "--resume", "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert "another configuration (train.seed: 0 -> 1)" in err and len(err.splitlines()) == 1

    # The same command, in a process like the uninterrupted run's (one thread: float sums
    # depend on the thread count, and CI machines differ from the pytest process's).
    log = runs["root"] / "resumed-run"
    assert start(finetune_args(model_dir, "--out", str(out), "--resume"), runs["root"],
                 log).wait(timeout=600) == 0, log.with_suffix(".err").read_text()
    resumed = json.loads((out / METRICS_FILE).read_text())
    straight = json.loads((runs["cached"] / METRICS_FILE).read_text())
    assert KILL_AFTER_STEP <= resumed["resumed_at_step"] < straight["total_steps"]
    assert f"(resumed at step {resumed['resumed_at_step']})" in log.with_suffix(
        ".out").read_text()
    assert straight["resumed_at_step"] is None and resumed["spec"] == straight["spec"]
    for name in ("best_validation", "best_step", "total_steps", "test", "eval_log"):
        assert resumed[name] == straight[name], name
    assert [r["lr"] for r in resumed["train_log"]] == [r["lr"] for r in straight["train_log"]]
    weights = load_file(out / "model.safetensors")
    for name, value in load_file(runs["cached"] / "model.safetensors").items():
        assert torch.equal(weights[name], value), name
    assert not (out / "checkpoint").exists() and not list(out.glob(".*"))


def _saving_build(model_dir):
    """A build that writes what the end of training writes: the best model with its record,
    then the final model, the final record and no checkpoint."""
    tokenizer, model = load_for_inference(model_dir)

    def build(directory):
        save_model(model, tokenizer, directory, metrics={"best_validation": {"accuracy": 1}})
        finish_run(model, tokenizer, directory, TrainResult(), TrainConfig(), selected=False)
        return {"test": {"accuracy": 1.0}}
    return build


def test_a_crash_at_any_write_of_the_final_save_never_looks_finished(
        model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBOOK_RUNS", str(tmp_path))
    build, real_replace, replaced = _saving_build(model_dir), os.replace, []

    def counting(source, target):
        replaced.append(os.fspath(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", counting)
    cached_run("finetune", {"run": "old"}, build, out=tmp_path / "count")
    writes = len(replaced)
    assert writes >= 10 and replaced[-1].endswith(METRICS_FILE)

    for crash_at in range(1, writes + 1):
        out = tmp_path / f"crash-{crash_at}"
        cached_run("finetune", {"run": "old"}, build, out=out)  # a finished run is replaced
        calls = []

        def crashing(source, target, calls=calls, crash_at=crash_at):
            calls.append(target)
            if len(calls) == crash_at:
                raise OSError(f"injected crash at write {crash_at}")
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", crashing)
        with pytest.raises(OSError, match="injected crash"):
            cached_run("finetune", {"run": "new"}, build, out=out)
        monkeypatch.setattr(os, "replace", real_replace)
        assert finished_metrics(out, {"run": "new"}) is None, crash_at
        assert finished_metrics(out, {"run": "old"}) is None, crash_at
        run = cached_run("finetune", {"run": "new"}, build, out=out)
        assert not run.cached and finished_metrics(out, {"run": "new"}) is not None


KILLED_WHILE_MARKING = """
import json, os, signal, sys
from pathlib import Path
from llmbook.core import cached_run

def build(directory):
    (directory / "model.safetensors").write_bytes(b"weights")
    (directory / "metrics.json").write_text(json.dumps({"best_validation": {}}))
    return {"test": {"accuracy": 1.0}}

real_replace = os.replace
def replace(source, target):
    if Path(target).name == "metrics.json" and '"spec"' in Path(source).read_text():
        os.kill(os.getpid(), signal.SIGKILL)  # the finished record is written, not renamed
    real_replace(source, target)

if sys.argv[2] == "kill":
    os.replace = replace
run = cached_run("finetune", {"run": 1}, build, out=sys.argv[1])
print("cached" if run.cached else "built")
"""


def test_a_kill_9_while_the_finished_record_is_renamed_leaves_an_unfinished_run(tmp_path):
    out, script = tmp_path / "run", tmp_path / "mark.py"
    script.write_text(KILLED_WHILE_MARKING)
    env = {**os.environ, "LLMBOOK_RUNS": str(tmp_path)}
    killed = subprocess.run([sys.executable, str(script), str(out), "kill"], env=env,
                            capture_output=True, text=True, check=False, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert finished_metrics(out, {"run": 1}) is None
    assert list(out.glob(".metrics.json.*.tmp"))  # the complete record, never renamed
    done = subprocess.run([sys.executable, str(script), str(out), "again"], env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.stdout.strip() == "built" and finished_metrics(out, {"run": 1}) is not None
    assert not list(out.glob(".*.tmp"))
