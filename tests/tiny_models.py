"""A tiny randomly initialised classifier directory for tests (no dependency on runs/)."""

from pathlib import Path

from transformers import BertConfig, BertForSequenceClassification, set_seed

from llmbook.data import LABEL_NAMES
from llmbook.models import load_tokenizer


def tiny_classifier_dir(directory: Path, layers: int = 2, heads: int = 4) -> Path:
    """Save a 2-layer, 32-wide BERT classifier with the MiniLM tokenizer into ``directory``."""
    set_seed(0)
    tokenizer = load_tokenizer()
    tokenizer.model_max_length = 32
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=64, num_labels=2,
                        max_position_embeddings=64, id2label=dict(enumerate(LABEL_NAMES)),
                        label2id={n: i for i, n in enumerate(LABEL_NAMES)})
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
