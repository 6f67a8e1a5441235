"""Next-token (causal-LM) pre-training from scratch (part "Generative models", chapter
"Next-token pre-training").

The GPT recipe on chapter 4's corpus: the same IMDb pre-training pool and the same held-out
reviews (:func:`llmbook.data.corpora.load_corpus`), a byte-level BPE vocabulary learned from
the pool (:func:`llmbook.generation.bpe.train_byte_level_bpe`), a small GPT-2 decoder with
random weights, trained with the book's shared loop (:func:`llmbook.training.loop.train`) on
the causal-LM loss.  Each review is one training sequence, ``<|endoftext|>`` first (so its
first word is predicted too), truncated to ``max_length`` tokens.  Recorded before and after
training: held-out perplexity (exp of the token-weighted next-token cross-entropy) and samples from
fixed prompts at fixed seeds.  Runs are cached in ``runs/`` by configuration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel, set_seed

from llmbook import __version__
from llmbook.core.runs import Run, cached_run
from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.causal_lm import IGNORE_INDEX, causal_lm_loss
from llmbook.generation.decoding import generate_tokens
from llmbook.pretraining.runs import pretraining_config, pretraining_texts
from llmbook.training.loop import train

#: prompts continued before and after training (sampled at fixed seeds)
PROMPTS = ("This movie was", "The acting", "I would not recommend")


@dataclass(frozen=True)
class ClmSpec:
    """Everything that determines a causal-LM pre-training run (and its cache key)."""

    corpus_size: int | None = None
    eval_size: int = 500
    max_length: int = 64
    vocab_size: int = 6_000
    hidden_size: int = 128
    layers: int = 2
    steps: int = 1_000
    batch_size: int = 32
    learning_rate: float = 5e-4
    seed: int = 0

    def model_config(self, tokenizer) -> GPT2Config:
        """A GPT-2 of ``layers`` x ``hidden_size`` (64-wide heads) for ``tokenizer``."""
        end = tokenizer.eos_token_id
        return GPT2Config(vocab_size=len(tokenizer), n_positions=self.max_length,
                          n_embd=self.hidden_size, n_layer=self.layers,
                          n_head=max(1, self.hidden_size // 64), bos_token_id=end,
                          eos_token_id=end, pad_token_id=end)


def clm_spec_for(profile, **overrides) -> ClmSpec:
    """The profile's causal-LM sizes: chapter 4's corpus, held-out set, sequence length and
    vocabulary size, the decoder's own width, depth and steps (``clm_*`` fields)."""
    spec = ClmSpec(corpus_size=profile.corpus_size, eval_size=profile.mlm_eval_size,
                   max_length=profile.mlm_max_length, vocab_size=profile.scratch_vocab_size,
                   hidden_size=profile.clm_hidden, layers=profile.clm_layers,
                   steps=profile.clm_steps, batch_size=profile.batch_size)
    return replace(spec, **overrides)


def tokenize_for_clm(dataset, tokenizer, max_length: int):
    """``input_ids`` and ``attention_mask``: ``<|endoftext|>`` then the text, at most
    ``max_length`` tokens in all."""
    start = tokenizer.eos_token_id

    def encode(batch):
        ids = tokenizer(batch["text"], truncation=True, max_length=max_length - 1,
                        add_special_tokens=False)["input_ids"]
        ids = [[start, *row] for row in ids]
        return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)


class CausalCollator:
    """Right-pads a batch; ``labels`` are the input ids, :data:`IGNORE_INDEX` at padding
    (the model shifts them: position t is scored on token t + 1)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(examples), width), dtype=torch.long)
        for i, example in enumerate(examples):
            input_ids[i, :len(example["input_ids"])] = torch.tensor(example["input_ids"])
            attention[i, :len(example["input_ids"])] = 1
        labels = input_ids.masked_fill(attention == 0, IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


@torch.no_grad()
def held_out_perplexity(model, dataset, pad_token_id: int, batch_size: int = 64) -> dict:
    """Loss (mean next-token cross-entropy per predicted token) and perplexity on ``dataset``."""
    model.eval()
    total, count = 0.0, 0
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=CausalCollator(pad_token_id))
    for batch in loader:
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits
        predicted = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        total += float(causal_lm_loss(logits, batch["labels"])) * predicted
        count += predicted
    return {"loss": total / count, "perplexity": math.exp(total / count), "tokens": count}


def sample_continuations(model, tokenizer, prompts=PROMPTS, max_new_tokens: int = 24,
                         seed: int = 0, **settings) -> list[str]:
    """One sampled continuation (top-p 0.9 unless ``settings`` say otherwise) per prompt,
    prompt i drawn with seed ``seed + i``, so before and after training are comparable.
    A continuation stops at the model's context (``n_positions``)."""
    settings = {"do_sample": True, "top_p": 0.9, **settings}
    model.eval()
    texts = []
    for i, prompt in enumerate(prompts):
        ids = [tokenizer.eos_token_id, *tokenizer(prompt, add_special_tokens=False).input_ids]
        room = min(max_new_tokens, model.config.n_positions - len(ids))
        out = generate_tokens(model, torch.tensor([ids]), room, seed=seed + i,
                              eos_token_id=tokenizer.eos_token_id, **settings)
        texts.append(prompt + tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
    return texts


def _measure(model, tokenizer, held_out, spec: ClmSpec) -> dict:
    return {**held_out_perplexity(model, held_out, tokenizer.eos_token_id),
            "samples": sample_continuations(model, tokenizer, seed=spec.seed)}


def pretrain_clm(spec: ClmSpec, out: str | Path | None = None, force: bool = False,
                 resume: bool = True) -> Run:
    """Run (or load from the ``runs/`` cache) the causal-LM pre-training ``spec`` describes;
    ``resume`` continues an interrupted run of the same spec."""
    key = {"llmbook": __version__, "objective": "clm", **asdict(spec)}
    return cached_run("pretrain-clm", key, lambda directory: _clm_run(spec, directory), out,
                      force, resume=resume)


def _clm_run(spec: ClmSpec, directory: Path) -> dict:
    """Byte-level BPE and a random GPT-2, measured, trained on next tokens, measured again."""
    pool, held_out_texts = pretraining_texts(spec)
    set_seed(spec.seed)
    tokenizer = train_byte_level_bpe(pool["text"], spec.vocab_size, spec.max_length)
    model = GPT2LMHeadModel(spec.model_config(tokenizer))
    train_set = tokenize_for_clm(pool, tokenizer, spec.max_length)
    held_out = tokenize_for_clm(held_out_texts, tokenizer, spec.max_length)
    before = _measure(model, tokenizer, held_out, spec)
    config = pretraining_config(spec, directory)
    result = train(model, tokenizer, train_set, held_out, config, metrics_fn=None,
                   collator=CausalCollator(tokenizer.eos_token_id))
    after = _measure(model, tokenizer, held_out, spec)
    return dict(before=before, after=after, train_examples=len(train_set),
                steps_per_second=result.total_steps / max(result.train_seconds, 1e-9),
                parameters=sum(p.numel() for p in model.parameters()))
