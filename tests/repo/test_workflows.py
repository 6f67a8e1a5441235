"""GitHub Actions workflows: valid YAML, and the two jobs do what the README promises."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name):
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def steps(job):
    return job["steps"]


def runs(job):
    return "\n".join(step.get("run", "") for step in steps(job))


def used(job, action):
    return [step for step in steps(job) if step.get("uses", "").startswith(action)]


def test_both_workflows_exist():
    assert {p.name for p in FILES} >= {"pages.yml", "gpu-nbval.yml"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_valid_workflow_with_required_keys(path):
    workflow = load(path.name)
    assert workflow.get("on"), f"{path.name}: no trigger (`on`)"
    assert workflow.get("jobs"), f"{path.name}: no jobs"
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on"), f"{path.name}: job {name} has no runs-on"
        assert steps(job), f"{path.name}: job {name} has no steps"
        for step in steps(job):
            assert ("uses" in step) != ("run" in step), f"{path.name}/{name}: bad step {step}"


def test_pages_builds_with_make_book_and_uploads_the_site():
    workflow = load("pages.yml")
    build = workflow["jobs"]["build"]
    assert "make book" in runs(build)
    uploads = used(build, "actions/upload-pages-artifact")
    assert uploads and uploads[0]["with"]["path"] == "_build/html"
    assert workflow["permissions"]["pages"] == "write"
    assert workflow["permissions"]["id-token"] == "write"
    deploy = [job for job in workflow["jobs"].values() if used(job, "actions/deploy-pages")]
    assert deploy and deploy[0]["needs"] == "build"


def test_pages_caches_executed_notebooks_and_trained_runs():
    build = load("pages.yml")["jobs"]["build"]
    caches = used(build, "actions/cache")
    assert caches, "no actions/cache step"
    paths = caches[0]["with"]["path"].split()
    assert {"_build/.jupyter_cache", "_build/.profile", "runs"} <= set(paths)
    order = [step.get("uses", step.get("run")) for step in steps(build)]
    assert order.index(caches[0]["uses"]) < order.index("make book"), "restore before building"


def test_gpu_job_runs_nbval_on_a_self_hosted_gpu_runner():
    workflow = load("gpu-nbval.yml")
    (job,) = workflow["jobs"].values()
    labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
    assert "self-hosted" in labels and "gpu" in labels
    env = {**workflow.get("env", {}), **job.get("env", {})}
    assert env["LLMBOOK_PROFILE"] == "gpu"
    assert "download.pytorch.org/whl/cu" in env["TORCH_SPEC"]
    assert "--nbval" in runs(job) and "notebooks/" in runs(job)
    assert "torch.cuda.is_available()" in runs(job), "fail fast when no GPU is visible"


def test_gpu_job_runs_the_gpu_smoke_offline_before_nbval():
    (job,) = load("gpu-nbval.yml")["jobs"].values()
    commands = [step.get("run", "") for step in steps(job)]
    smoke = next(i for i, run in enumerate(commands) if "scripts/gpu_smoke.py" in run)
    assert smoke < next(i for i, run in enumerate(commands) if "--nbval" in run)
    assert steps(job)[smoke]["env"]["LLMBOOK_OFFLINE"] == "1"  # the packaged models


def test_gpu_smoke_without_cuda_says_so_in_one_line_and_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the smoke check would run for minutes")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_smoke.py")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("gpu-smoke: no CUDA device") and done.stderr.count("\n") == 1


def book_stamp(project: Path, profile: str = "cpu") -> str:
    """What ``make book`` would record in ``_build/.profile`` for ``project`` (a dry run)."""
    plan = subprocess.run(["make", "-n", "book", f"LLMBOOK_PROFILE={profile}"], cwd=project,
                          capture_output=True, text=True, check=True).stdout
    (stamp,) = re.findall(r'echo "([^"]+)" > _build/.profile', plan)
    return stamp


def test_make_book_re_executes_when_the_profile_or_the_library_changes(tmp_path):
    # jupyter-cache keys outputs on notebook code only: the Makefile's stamp must cover what the
    # notebooks import, or a library change would publish stale outputs (the pages cache too).
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path)
    shutil.copytree(ROOT / "src", tmp_path / "src")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()  # newer than pyproject.toml: no install step
    before = book_stamp(tmp_path)
    assert before == book_stamp(tmp_path) and before.startswith("cpu ")
    assert book_stamp(tmp_path, "smoke") != before
    module = next((tmp_path / "src").rglob("*.py"))
    module.write_text(module.read_text() + "\n# changed\n")
    assert book_stamp(tmp_path) != before
