"""``make lab``: JupyterLab on ``notebooks/`` with the ``llmbook`` kernel (the venv's Python).

The server is started headless by the Makefile's own ``lab`` target (its install step taken as
done), asked for its kernelspecs and files over the REST API, and a small notebook -- a
chapter's first cell, then checks -- is run in the llmbook kernel over the kernel's websocket,
as a browser tab runs it.  The server is stopped at the end.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
KERNEL = "llmbook"
START_SECONDS = 120  # a cold JupyterLab on a busy 2-core machine
REPLY_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    def __init__(self, port: int, token: str):
        self.base, self.token = f"127.0.0.1:{port}", token

    def request(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            f"http://{self.base}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text and path.startswith("/api") else text


def _wait_until_up(lab: Lab, server: subprocess.Popen) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < START_SECONDS:
        if server.poll() is not None:
            pytest.fail(f"`make lab` exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            lab.request("GET", "/api/status")
            return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {START_SECONDS} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not (VENV / "bin" / "jupyter-lab").exists():
        pytest.fail(f"no jupyter-lab in {VENV}: run `make install` (it installs the lab extra)")
    home = tmp_path_factory.mktemp("jupyter")
    port, token = _free_port(), secrets.token_hex(16)
    # Jupyter's user-level folders point into the test's, so that the kernel it finds is the
    # one the Makefile registered inside the venv (--sys-prefix), not one in ~/.local.
    env = {**os.environ, "LLMBOOK_PROFILE": "smoke", "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "run"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    lab_args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
                "--ServerApp.port_retries=0")
    server = subprocess.Popen(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", "lab", f"VENV={VENV}",
         f"LAB_ARGS={lab_args}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lab = Lab(port, token)
    try:
        lab.startup_seconds = _wait_until_up(lab, server)
        yield lab
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # make and jupyter lab, which stops its kernels
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def test_lab_offers_the_llmbook_kernel_of_this_venv(lab):
    specs = lab.request("GET", "/api/kernelspecs")["kernelspecs"]
    assert KERNEL in specs, f"kernels offered: {sorted(specs)}"
    spec = specs[KERNEL]["spec"]
    assert spec["language"] == "python" and spec["display_name"] == f"llmbook ({VENV.name})"
    assert Path(spec["argv"][0]).parent == VENV / "bin", spec["argv"]


def test_lab_serves_the_chapters(lab):
    names = {item["name"] for item in lab.request("GET", "/api/contents")["content"]}
    assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= names
    assert "JupyterLab" in lab.request("GET", "/lab")


def _execute(channel, code: str) -> dict:
    """Run ``code`` in the kernel behind ``channel``; its text output, result and error."""
    msg_id = uuid.uuid4().hex
    channel.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    out = {"text": "", "error": None}
    while True:  # iopub's "idle" for this request comes after all of its output
        message = json.loads(channel.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            out["text"] += content["text"]
        elif kind in ("execute_result", "display_data"):
            out["text"] += content["data"].get("text/plain", "")
        elif kind == "error":
            out["error"] = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            return out


def test_a_notebook_runs_in_the_llmbook_kernel(lab):
    import websocket  # websocket-client, a jupyter-server dependency

    chapter = nbformat.read(ROOT / "notebooks" / "01_data_and_tokenization.ipynb", as_version=4)
    setup, profile = [cell for cell in chapter.cells if cell.cell_type == "code"][:2]
    notebook = nbformat.v4.new_notebook(cells=[
        setup,  # every chapter's hidden set-up cell: a no-op where llmbook imports
        profile,  # then the chapter box and the profile in use
        nbformat.v4.new_code_cell("import sys, torch, llmbook\nprint(sys.prefix)"),
        nbformat.v4.new_code_cell("from llmbook.data import LABEL_NAMES\nLABEL_NAMES"),
    ])
    kernel = lab.request("POST", "/api/kernels", {"name": KERNEL})
    try:
        channel = websocket.create_connection(
            f"ws://{lab.base}/api/kernels/{kernel['id']}/channels?token={lab.token}",
            timeout=REPLY_SECONDS)
        try:
            outputs = [_execute(channel, cell.source) for cell in notebook.cells]
        finally:
            channel.close()
    finally:
        lab.request("DELETE", f"/api/kernels/{kernel['id']}")
    assert [o["error"] for o in outputs] == [None] * len(outputs), outputs
    assert outputs[0]["text"] == ""
    assert "smoke" in outputs[1]["text"]
    assert outputs[2]["text"].strip() == str(VENV)
    assert outputs[3]["text"].strip() == "('negative', 'positive')"
