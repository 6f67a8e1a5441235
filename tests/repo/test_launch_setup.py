"""The site's launch buttons (Binder, Colab): what each environment installs agrees with the
Makefile (the set-up cell itself runs in tests/integration/test_colab_setup.py)."""

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
POST_BUILD = ROOT / "binder" / "postBuild"
SETUP_CELL = (ROOT / "scripts" / "notebook_setup_cell.py").read_text()


def _make_variable(name):
    return re.search(rf"^{name} [?:]?= (.+)$", MAKEFILE, re.M).group(1).strip()


def test_the_site_has_both_launch_buttons():
    buttons = yaml.safe_load((ROOT / "_config.yml").read_text())["launch_buttons"]
    assert buttons["binderhub_url"] and buttons["colab_url"]


def test_binder_installs_what_make_install_installs():
    script = POST_BUILD.read_text()
    assert os.access(POST_BUILD, os.X_OK) and script.startswith("#!/bin/bash")
    torch, index = _make_variable("TORCH_SPEC"), _make_variable("TORCH_CPU_INDEX")
    assert f"{torch} --index-url {index}" in script  # the CPU build: Binder has no GPU
    assert f"--no-deps {_make_variable('SMOLLM2_SPEC')}" in script
    assert '".[book]"' in script
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_the_setup_cell_pins_the_makefiles_torch_and_smollm2():
    assert f'"{_make_variable("TORCH_SPEC")}"' in SETUP_CELL
    assert _make_variable("TORCH_CPU_INDEX") in SETUP_CELL
    assert f'"{_make_variable("SMOLLM2_SPEC")}"' in SETUP_CELL
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert f"git+{repository['url']}@{repository['branch']}" in SETUP_CELL
