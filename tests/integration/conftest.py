"""Fixtures of the service tests: the tiny classifier with its manifest, served by
test_serve.py and test_service_faults.py (helpers in serve_helpers.py)."""

import pytest

from llmbook.deployment import write_manifest


@pytest.fixture(scope="session")
def model_dir(tiny_classifier_dir, tmp_path_factory):
    """The tiny classifier of tests/conftest.py with a sha256 manifest (do not modify it: copy
    it first)."""
    directory = tiny_classifier_dir(tmp_path_factory.mktemp("served"))
    write_manifest(directory)
    return directory
