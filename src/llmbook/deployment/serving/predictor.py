"""The model behind the sentiment service (chapter 15): a checksummed export, loaded once, scoring
batches of texts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from llmbook.deployment.manifest import VerifiedModel, verified_copy
from llmbook.deployment.serving.config import StartupError
from llmbook.deployment.variants import encode, onnx_variant, torch_variant


# ----------------------------------------------------------------------------- model
class Predictor:
    """Tokenizer + ONNX Runtime session or PyTorch model, loaded from a verified directory."""

    def __init__(self, model_dir: str | Path, backend: str | None = None):
        model_dir = Path(model_dir)
        # every file hashed as it is copied, the model loaded from that copy (ManifestError on
        # any mismatch): the bytes checked are the bytes loaded
        with verified_copy(model_dir) as verified:
            self._load(model_dir, verified, backend)

    def _load(self, model_dir: Path, verified: VerifiedModel, backend: str | None) -> None:
        weights = verified.weights
        onnx = [w for w in weights if w.suffix == ".onnx"]
        backend = backend or ("onnx" if onnx else "torch")
        config = json.loads((verified.path / "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self.tokenizer = AutoTokenizer.from_pretrained(verified.path)
        self.max_length = min(self.tokenizer.model_max_length, 512)
        self.backend = backend
        digest = hashlib.sha256("".join(verified.files[w.relative_to(verified.path).as_posix()]
                                        for w in weights).encode())
        self.version = f"{model_dir.name}@{digest.hexdigest()[:12]}"
        if backend == "onnx":
            if not onnx:
                raise StartupError(f"{model_dir} has no .onnx file in its manifest")
            self._run = onnx_variant("served", onnx[0]).run
        elif backend == "torch":
            if not any(w.suffix == ".safetensors" for w in weights):
                raise StartupError(f"{model_dir} has no .safetensors file in its manifest")
            model = AutoModelForSequenceClassification.from_pretrained(
                verified.path, use_safetensors=True)
            self._run = torch_variant("served", model).run
        else:
            raise StartupError(f"backend must be 'onnx' or 'torch', got {backend!r}")

    def predict(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), labels)``."""
        logits = self._run(encode(self.tokenizer, texts, self.max_length))
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)
