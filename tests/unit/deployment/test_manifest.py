"""The manifest as an integrity check (llmbook.deployment.manifest, chapter 15): every file
listed and hashed, nothing outside the directory, nothing unlisted, the bytes hashed are the
bytes loaded, an optional HMAC signature; the export cache keys on every source file."""

import json
import os
import shutil

import pytest

import llmbook.deployment.export as export
import llmbook.deployment.manifest as manifest
from llmbook.core import file_sha256
from llmbook.deployment import (
    MANIFEST,
    ManifestError,
    cached_export,
    manifest_key,
    verified_copy,
    verify_manifest,
    write_manifest,
)
from llmbook.deployment.serving import Predictor


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv(manifest.KEY_VARIABLE, raising=False)
    monkeypatch.delenv(manifest.KEY_FILE_VARIABLE, raising=False)


@pytest.fixture(scope="module")
def source(tiny_classifier_dir, tmp_path_factory):
    return tiny_classifier_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def model(source, tmp_path):
    copy = shutil.copytree(source, tmp_path / "model")
    write_manifest(copy)
    return copy


def listed(directory) -> dict:
    return json.loads((directory / MANIFEST).read_text())["files"]


def relist(directory, files: dict) -> None:
    (directory / MANIFEST).write_text(json.dumps({"version": 2, "files": files}))


def test_every_file_is_listed_also_in_subfolders(model):
    (model / "notes").mkdir()
    (model / "notes" / "card.md").write_text("a model card")
    write_manifest(model)
    files = listed(model)
    assert set(files) == {p.relative_to(model).as_posix() for p in model.rglob("*")
                          if p.is_file() and p.name != MANIFEST}
    assert files["notes/card.md"] == file_sha256(model / "notes" / "card.md")
    assert verify_manifest(model) == [model / "model.safetensors"]
    assert not (model / f".{MANIFEST}.partial").exists()


@pytest.mark.parametrize("name", ["added_tokens.json", ".hidden", "sub/extra.bin"])
def test_a_file_not_listed_is_refused(model, name):
    (model / name).parent.mkdir(exist_ok=True)
    (model / name).write_text("{}")
    with pytest.raises(ManifestError, match=f"not in manifest.json: {name}"):
        verify_manifest(model)


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "sub/../../outside.txt",
                                  "./config.json", "sub//x", "a\\..\\b", "C:config.json"])
def test_a_path_outside_the_directory_is_refused(model, name):
    outside = model.parent / "outside.txt"
    outside.write_text("secret")
    relist(model, {**listed(model), name: file_sha256(outside)})
    with pytest.raises(ManifestError, match="not a plain path inside"):
        verify_manifest(model)


def test_symbolic_links_are_refused(model, tmp_path):
    (tmp_path / "elsewhere.json").write_text("{}")
    os.symlink(tmp_path / "elsewhere.json", model / "vocab.json")
    with pytest.raises(ManifestError, match="vocab.json is a symbolic link"):
        write_manifest(model)
    with pytest.raises(ManifestError, match="symbolic link"):
        verify_manifest(model)
    (model / "vocab.json").unlink()
    os.symlink(tmp_path, model / "linked-folder")
    with pytest.raises(ManifestError, match="linked-folder is a symbolic link"):
        verify_manifest(model)


def test_tampering_and_a_broken_manifest_are_one_line_errors(model):
    config = model / "config.json"
    config.write_text(config.read_text().replace("negative", "positive"))
    with pytest.raises(ManifestError, match="config.json does not match its sha256"):
        verify_manifest(model)
    for broken in ("{not json", "[]", '{"files": {"config.json": "abc"}}', "[" * 100_000):
        (model / MANIFEST).write_text(broken)
        with pytest.raises(ManifestError, match="not valid JSON|no 'files' mapping"):
            verify_manifest(model)
    relist(model, {"config.json": file_sha256(config)})
    with pytest.raises(ManifestError, match="not in manifest.json"):
        verify_manifest(model)


def test_the_bytes_hashed_are_the_bytes_loaded(model, monkeypatch):
    """A file swapped right after it was checked is never loaded: the copy holds what was
    hashed."""
    original = (model / "config.json").read_bytes()
    hash_file = manifest._hash

    def swap_after_check(source, target=None):
        digest = hash_file(source, target)
        if source.name == "config.json":  # an attacker's write between check and load
            swapped = json.loads(original)
            swapped["id2label"] = {"0": "positive", "1": "negative"}
            source.write_text(json.dumps(swapped))
        return digest

    monkeypatch.setattr(manifest, "_hash", swap_after_check)
    predictor = Predictor(model, backend="torch")
    assert predictor.labels == ["negative", "positive"]  # the verified file's labels
    monkeypatch.setattr(manifest, "_hash", hash_file)
    with pytest.raises(ManifestError, match="does not match"):  # the swap is caught next time
        Predictor(model)
    (model / "config.json").write_bytes(original)
    with verified_copy(model) as verified:
        assert verified.path != model and (verified.path / "config.json").read_bytes() == original
        assert verified.weights == [verified.path / "model.safetensors"]
        copy = verified.path
    assert not copy.exists()  # deleted once loaded


def test_a_signed_manifest(model, monkeypatch, tmp_path):
    write_manifest(model, key=b"the signing key")
    assert json.loads((model / MANIFEST).read_text())["signature"].startswith("hmac-sha256:")
    assert verify_manifest(model, key=b"the signing key")
    with pytest.raises(ManifestError, match="signature does not match"):
        verify_manifest(model, key=b"another key")
    monkeypatch.setenv(manifest.KEY_VARIABLE, "another key")  # how `llmbook serve` gets it
    with pytest.raises(ManifestError, match="signature does not match"):
        Predictor(model)
    key_file = tmp_path / "key"
    key_file.write_text("the signing key\n")
    monkeypatch.delenv(manifest.KEY_VARIABLE)
    monkeypatch.setenv(manifest.KEY_FILE_VARIABLE, str(key_file))
    assert manifest_key() == b"the signing key"
    assert Predictor(model).labels == ["negative", "positive"]
    write_manifest(model, key=b"")  # unsigned
    with pytest.raises(ManifestError, match="not signed"):
        verify_manifest(model)
    # files and hashes rewritten by someone without the key: the signature no longer matches
    write_manifest(model, key=b"the signing key")
    signed = json.loads((model / MANIFEST).read_text())
    (model / "notes.txt").write_text("added")
    signed["files"]["notes.txt"] = file_sha256(model / "notes.txt")
    (model / MANIFEST).write_text(json.dumps(signed))
    with pytest.raises(ManifestError, match="signature does not match"):
        verify_manifest(model)


def test_the_export_cache_keys_on_every_source_file(model, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBOOK_RUNS", str(tmp_path / "runs"))
    made = []
    monkeypatch.setattr(export, "export_model", lambda source, out, *args: made.append(out) or out)
    first = cached_export(model)
    (model / "tokenizer_config.json").write_text("{}")  # the tokenizer changed, weights did not
    second = cached_export(model)
    (model / ".lock").write_text("bookkeeping")  # hidden files are not read by a loader
    third = cached_export(model)
    assert made == [first, second, third] and first != second == third
