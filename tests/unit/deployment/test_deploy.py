"""Compression and export (llmbook.deployment.variants, chapter 14) on a tiny random classifier."""

import json

import numpy as np
import pytest
import torch

from llmbook.cli import main
from llmbook.core import file_sha256
from llmbook.deployment import (
    MANIFEST,
    ONNX_FILE,
    Benchmark,
    ManifestError,
    count_heads,
    encode,
    export_model,
    fastest_within,
    head_importance,
    largest_within,
    least_important_heads,
    magnitude_prune,
    max_logit_difference,
    onnx_variant,
    prune_heads,
    quantize_torch_int8,
    sparsity,
    torch_state_bytes,
    torch_variant,
    verify_manifest,
    write_manifest,
)
from llmbook.models import load_for_inference

TEXTS = ["a gem", "two hours I will never get back", "fine", "not good, not bad, just long",
         "the best film of the year by far", "meh"]
LABELS = [1, 0, 1, 0, 1, 0]


@pytest.fixture(scope="module")
def model_dir(tiny_classifier_dir, tmp_path_factory):
    return tiny_classifier_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_for_inference(model_dir)


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    """fp32 and int8 ONNX exports, the int8 one through the command line."""
    fp32 = export_model(model_dir, tmp_path_factory.mktemp("onnx-fp32"))
    int8 = tmp_path_factory.mktemp("onnx-int8")
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--quantize", "int8",
                 "--out", str(int8)]) == 0
    return fp32, int8


def test_export_signs_the_manifest_with_the_key_file(model_dir, tmp_path, capsys):
    key_file, out = tmp_path / "key", tmp_path / "signed"
    key_file.write_text("a secret\n")
    assert main(["export", "--model", str(model_dir), "--out", str(out), "--sign-key",
                 str(tmp_path / "missing")]) == 2
    assert "--sign-key" in capsys.readouterr().err and not out.exists()
    assert main(["export", "--model", str(model_dir), "--out", str(out), "--sign-key",
                 str(key_file)]) == 0
    assert "manifest (signed)" in capsys.readouterr().out
    assert verify_manifest(out, b"a secret")
    with pytest.raises(ManifestError, match="signature does not match"):
        verify_manifest(out, b"another secret")


def batches(tokenizer):
    return [encode(tokenizer, TEXTS[:n], 32) for n in (1, 3, 6)]


def test_magnitude_pruning_reaches_the_sparsity_and_keeps_shapes(loaded):
    _, model = loaded
    pruned = magnitude_prune(model, 0.6)
    assert sparsity(model) < 0.01
    assert abs(sparsity(pruned) - 0.6) < 0.01
    assert torch_state_bytes(pruned) == torch_state_bytes(model)
    assert torch.equal(pruned.bert.embeddings.word_embeddings.weight,
                       model.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(model, 1.0)


def test_removing_heads_equals_zeroing_their_output(loaded):
    tokenizer, model = loaded
    heads = {0: [1, 3], 1: [0]}
    pruned = prune_heads(model, heads)
    assert count_heads(pruned) == count_heads(model) - 3
    assert pruned.bert.encoder.layer[0].attention.self.query.out_features == 2 * 8
    size = model.bert.encoder.layer[0].attention.self.attention_head_size

    def zero_heads(layer):
        def hook(_, args):
            context = args[0].clone()
            for head in heads[layer]:
                context[..., head * size:(head + 1) * size] = 0
            return (context,)
        return hook

    hooks = [model.bert.encoder.layer[i].attention.output.dense.register_forward_pre_hook(
        zero_heads(i)) for i in heads]
    try:
        batch = batches(tokenizer)[-1]
        reference = torch_variant("gated", model).run(batch)
    finally:
        for hook in hooks:
            hook.remove()
    np.testing.assert_allclose(torch_variant("pruned", pruned).run(batch), reference,
                               atol=1e-5)
    assert not np.allclose(torch_variant("full", model).run(batch), reference, atol=1e-5)
    with pytest.raises(ValueError, match="every head"):
        prune_heads(model, {0: [0, 1, 2, 3]})


def test_head_importance_and_choice(loaded):
    tokenizer, model = loaded
    importance = head_importance(model, tokenizer, TEXTS, LABELS, 32, batch_size=4)
    assert importance.shape == (2, 4) and (importance >= 0).all() and importance.sum() > 0
    assert all(p.grad is None for p in model.parameters())
    chosen = least_important_heads(importance, 3)
    assert sum(map(len, chosen.values())) == 3
    lowest = np.argsort(importance, axis=None)[0]
    assert int(lowest) % 4 in chosen[int(lowest) // 4]
    everything_but_one_per_layer = least_important_heads(importance, 8)
    assert all(len(h) == 3 for h in everything_but_one_per_layer.values())


def test_torch_int8_replaces_linears_and_stays_close(loaded):
    tokenizer, model = loaded
    quantized = quantize_torch_int8(model)
    assert not any(type(m) is torch.nn.Linear for m in quantized.bert.encoder.modules())
    batch = batches(tokenizer)[-1]
    difference = max_logit_difference(torch_variant("a", model),
                                             torch_variant("b", quantized), [batch])
    assert 0 < difference < 0.1


def test_onnx_export_matches_pytorch(loaded, exported):
    tokenizer, model = loaded
    fp32_dir, int8_dir = exported
    reference = torch_variant("torch", model)
    onnx_fp32 = onnx_variant("ort", fp32_dir / ONNX_FILE)
    assert max_logit_difference(reference, onnx_fp32, batches(tokenizer)) < 1e-4
    onnx_int8 = onnx_variant("ort int8", int8_dir / ONNX_FILE)
    assert onnx_int8.size_bytes < 0.5 * onnx_fp32.size_bytes
    assert max_logit_difference(reference, onnx_int8, batches(tokenizer)) < 0.1


def test_export_writes_a_manifest_and_provenance(model_dir, exported):
    _, int8_dir = exported
    assert verify_manifest(int8_dir) == [int8_dir / ONNX_FILE]
    info = json.loads((int8_dir / "export.json").read_text())
    assert info["quantize"] == "int8" and info["heads"] == 8 and info["layers"] == 2
    assert info["source_sha256"]["model.safetensors"] == file_sha256(
        model_dir / "model.safetensors")
    listed = json.loads((int8_dir / MANIFEST).read_text())["files"]
    assert {"model.onnx", "config.json", "tokenizer.json"} <= set(listed)


def test_manifest_detects_tampering(model_dir, tmp_path):
    import shutil

    copy = shutil.copytree(model_dir, tmp_path / "model")
    with pytest.raises(ManifestError, match="no manifest.json"):
        verify_manifest(copy)
    write_manifest(copy)
    assert verify_manifest(copy) == [copy / "model.safetensors"]
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(ManifestError, match="does not match its sha256"):
        verify_manifest(copy)
    write_manifest(copy)
    (copy / "extra.onnx").write_bytes(b"not listed")
    with pytest.raises(ManifestError, match="not in manifest.json: extra.onnx"):
        verify_manifest(copy)
    (copy / "extra.onnx").unlink()
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verify_manifest(copy)


def test_benchmark_measures_every_variant_alike(loaded):
    tokenizer, model = loaded
    bench = Benchmark(tokenizer, TEXTS, LABELS, 32, repeats=5, warmup=1, big_batch=4)
    table = bench.table([torch_variant("fp32", model),
                         torch_variant("sparse", magnitude_prune(model, 0.5))])
    assert list(table["variant"]) == ["fp32", "sparse"]
    assert table.loc[0, "speedup_b1"] == 1 and table.loc[0, "accuracy_change_pt"] == 0
    assert (table["p95_ms_b1"] >= table["p50_ms_b1"]).all() and (table["texts_per_s"] > 0).all()
    assert table["accuracy"].between(0, 1).all()
    for name, accuracy in zip(table["variant"], table["accuracy"], strict=True):
        assert bench.correct(name).shape == (len(TEXTS),)
        assert bench.correct(name).mean() == pytest.approx(accuracy)  # the same predictions
    with pytest.raises(KeyError, match="no accuracy measured yet for 'int8'"):
        bench.correct("int8")
    with pytest.raises(ValueError, match="6 texts but 2 labels"):
        Benchmark(tokenizer, TEXTS, LABELS[:2], 32)


def test_largest_within_uses_the_first_row_as_reference():
    import pandas as pd

    table = pd.DataFrame({"sparsity": [0.0, 0.5, 0.7, 0.9], "accuracy": [0.80, 0.799, 0.79, 0.6]})
    assert largest_within(table, "sparsity", 0.5) == 0.5
    assert largest_within(table, "sparsity", 1.0) == 0.7


def test_fastest_within_prefers_speed_inside_the_accuracy_budget():
    import pandas as pd

    table = pd.DataFrame({"variant": ["base", "a", "b", "c"], "speedup_b1": [1.0, 2.0, 5.0, 3.0],
                          "accuracy_change_pt": [0.0, -0.1, -2.0, -0.5]})
    best, within = fastest_within(table, 0.5)
    assert (best["variant"], within) == ("c", True)
    best, within = fastest_within(table, 0.05)  # nothing qualifies: fastest overall
    assert (best["variant"], within) == ("b", False)
