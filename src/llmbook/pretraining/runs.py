"""Masked-LM pre-training runs (chapter 4 from scratch; chapter 5 domain-adaptive).

:func:`train_wordpiece` learns a BERT vocabulary from a corpus.  :func:`pretrain` trains a
``BertForMaskedLM`` -- a small one with random weights, or a pretrained encoder continued on
in-domain text -- with the shared loop (:func:`llmbook.training.loop.train`), decoding only the
masked
positions during training (:class:`llmbook.pretraining.masking.BertForSparseMaskedLM`), random
masks for
training and *fixed* masks (same positions every run) for evaluation, and records perplexity
and masked-token accuracy before and after.  Runs are cached in ``runs/`` by configuration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch.utils.data import DataLoader
from transformers import BertConfig, set_seed

from llmbook import __version__
from llmbook.core.durable import atomic_save
from llmbook.core.runs import Run, cached_run
from llmbook.data.corpora import load_corpus, subsample
from llmbook.models.loading import load_encoder, load_mlm, load_tokenizer
from llmbook.pretraining.masking import (
    BertForSparseMaskedLM,
    MaskingCollator,
    fixed_mask_dataset,
    masked_token_accuracy,
    perplexity,
    sparse_decoding,
    tokenize_for_mlm,
)
from llmbook.training.config import WEIGHTS_FILE, TrainConfig
from llmbook.training.evaluation import evaluate_model
from llmbook.training.loop import launched_accelerator, train

SCRATCH = "scratch"


def _batches(texts: Iterable[str], size: int = 1_000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_wordpiece(texts: Iterable[str], vocab_size: int, base: str = "minilm"):
    """A WordPiece tokenizer of ``vocab_size`` entries learned from ``texts``.

    It keeps the normalisation (lower-casing, accent stripping), pre-tokenisation and special
    tokens of ``base``'s tokenizer; only the vocabulary is new.
    """
    if vocab_size < 200:
        raise ValueError(f"vocab_size {vocab_size} is too small for a WordPiece vocabulary")
    tokenizer = load_tokenizer(base).train_new_from_iterator(_batches(texts), vocab_size=vocab_size)
    return with_sorted_vocabulary(tokenizer)


def with_sorted_vocabulary(tokenizer):
    """``tokenizer`` with its entries other than the special tokens renumbered in sorted order
    (whole words, then ``##`` pieces).  The `tokenizers` trainer numbers ``##`` pieces in
    hash-map order, which changes from process to process (huggingface/tokenizers#1794): the
    same texts gave about 130 of chapter 4's 6,000 entries other ids in each run, so its
    "seeded" perplexities moved in the fourth digit.  WordPiece looks pieces up by their text,
    so the order means nothing else.  The same issue can also change which entries make the
    cut when counts tie; sorting cannot undo that (docs/decisions.md)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    special = {token["content"]: token["id"] for token in state["added_tokens"]}
    if sorted(special.values()) != list(range(len(special))):
        raise ValueError("expected the special tokens to have the first ids")
    rest = sorted((t for t in state["model"]["vocab"] if t not in special),
                  key=lambda token: (token.startswith("##"), token))
    state["model"]["vocab"] = {**special, **{t: i for i, t in enumerate(rest, len(special))}}
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
    return tokenizer


@dataclass(frozen=True)
class PretrainSpec:
    """Everything that determines a pre-training run (and its cache key).

    ``source`` is :data:`SCRATCH` (random weights, a new vocabulary of ``vocab_size``) or a
    model name/directory to continue pre-training.  ``hidden_size``/``layers`` only apply from
    scratch.  ``head_warmup_steps`` first trains the (new) MLM head alone, encoder frozen
    (see :func:`_train_head_only`).
    """

    source: str = SCRATCH
    corpus_size: int | None = None
    eval_size: int = 500
    max_length: int = 128
    vocab_size: int = 8_000
    hidden_size: int = 256
    layers: int = 4
    steps: int = 1_000
    head_warmup_steps: int = 0
    batch_size: int = 32
    learning_rate: float = 5e-4
    whole_word: bool = False
    seed: int = 0

    def scratch_config(self, tokenizer) -> BertConfig:
        """A small BERT for ``tokenizer``: ``layers`` x ``hidden_size``, 64-wide heads."""
        return BertConfig(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size,
            num_hidden_layers=self.layers, num_attention_heads=max(1, self.hidden_size // 64),
            intermediate_size=4 * self.hidden_size, max_position_embeddings=self.max_length,
            pad_token_id=tokenizer.pad_token_id,
        )


def evaluate_mlm(model, tokenizer, fixed_eval, batch_size: int = 64) -> dict:
    """Loss, perplexity and masked-token accuracy on a fixed-mask evaluation set."""
    loader = DataLoader(fixed_eval, batch_size=batch_size, collate_fn=MaskingCollator(tokenizer))
    metrics = evaluate_model(model, loader, launched_accelerator(), masked_token_accuracy)
    return {**metrics, "perplexity": perplexity(metrics["loss"])}


def _train_head_only(model, tokenizer, train_set, eval_set, spec: PretrainSpec, collator):
    """Train the MLM head with the encoder frozen (a new head on a pretrained encoder), at ten
    times the run's learning rate.  The decoder matrix is tied to the frozen word embeddings,
    so what trains here is the head's transform layer, its LayerNorm and the output bias."""
    encoder = model.base_model
    for param in encoder.parameters():
        param.requires_grad_(False)
    config = TrainConfig(max_steps=spec.head_warmup_steps, batch_size=spec.batch_size,
                         learning_rate=spec.learning_rate * 10, metric_for_best="loss",
                         seed=spec.seed, progress=True, log_every=10)
    result = train(model, tokenizer, train_set, eval_set, config,
                   metrics_fn=masked_token_accuracy, collator=collator)
    for param in encoder.parameters():
        param.requires_grad_(True)
    return result


def carry_pooler(directory: Path, source: str) -> list[str]:
    """Copy the pretrained pooler of ``source`` into the checkpoint in ``directory``.

    ``BertForMaskedLM`` has no pooler, so a continued-pre-training checkpoint would give a
    sequence classifier a *random* pooler, unlike the original model: an unfair start for the
    comparison in chapter 5.  Returns the tensor names added (none if ``source`` has none).
    """
    pooler = {f"bert.{k}": v.contiguous() for k, v in
              load_encoder(source).state_dict().items() if k.startswith("pooler.")}
    if pooler:
        weights_file = directory / WEIGHTS_FILE
        tensors = load_file(weights_file)
        atomic_save(weights_file, lambda temporary: save_file(
            {**tensors, **pooler}, str(temporary), metadata={"format": "pt"}))
    return sorted(pooler)


def pretraining_texts(spec) -> tuple:
    """Chapter 4's IMDb pre-training pool and held-out reviews (``spec.corpus_size``,
    ``spec.eval_size``, ``spec.seed``); the causal LM of the Generative models part reads the
    same two sets, so the two objectives are compared on the same text."""
    corpus = load_corpus("imdb")
    return (subsample(corpus["train"], spec.corpus_size, seed=spec.seed),
            subsample(corpus["validation"], spec.eval_size))


def pretraining_config(spec, directory: Path) -> TrainConfig:
    """A fixed budget of ``spec.steps`` steps, evaluated five times on the held-out loss (the
    lowest is kept), written to ``directory``."""
    return TrainConfig(max_steps=spec.steps, batch_size=spec.batch_size,
                       learning_rate=spec.learning_rate, metric_for_best="loss",
                       eval_every=max(1, spec.steps // 5), seed=spec.seed,
                       output_dir=str(directory), log_every=max(1, spec.steps // 100))


def pretrain(spec: PretrainSpec, out: str | Path | None = None, force: bool = False,
             resume: bool = True) -> Run:
    """Run (or load from the ``runs/`` cache) the masked-LM pre-training ``spec`` describes;
    ``resume`` continues an interrupted run of the same spec."""
    key = {"llmbook": __version__, **asdict(spec)}
    return cached_run("pretrain", key, lambda directory: _pretrain_run(spec, directory), out,
                      force, resume=resume)


def _pretrain_run(spec: PretrainSpec, directory: Path) -> dict:
    """Tokenizer and model (from scratch or a pretrained source), then masked-LM training."""
    pool, held_out = pretraining_texts(spec)
    set_seed(spec.seed)
    if spec.source == SCRATCH:
        tokenizer = train_wordpiece(pool["text"], spec.vocab_size)
        model, new_weights = BertForSparseMaskedLM(spec.scratch_config(tokenizer)), ["all"]
    else:
        tokenizer = load_tokenizer(spec.source)
        model, report = load_mlm(spec.source)
        model = sparse_decoding(model)
        new_weights = report.newly_initialised
    tokenizer.model_max_length = spec.max_length
    train_set = tokenize_for_mlm(pool, tokenizer, spec.max_length)
    fixed_eval = fixed_mask_dataset(tokenize_for_mlm(held_out, tokenizer, spec.max_length),
                                    tokenizer, seed=0)
    # each process masks its own part of a batch: with its own random stream
    collator = MaskingCollator(tokenizer, whole_word=spec.whole_word,
                               seed=spec.seed + launched_accelerator().process_index)
    before = evaluate_mlm(model, tokenizer, fixed_eval)
    head_result = None
    if spec.head_warmup_steps:
        head_result = _train_head_only(model, tokenizer, train_set, fixed_eval, spec, collator)
    config = pretraining_config(spec, directory)
    train(model, tokenizer, train_set, fixed_eval, config, metrics_fn=masked_token_accuracy,
          collator=collator)  # leaves the best (lowest held-out loss) weights in the model
    after = evaluate_mlm(model, tokenizer, fixed_eval)
    carried = [] if spec.source == SCRATCH else carry_pooler(directory, spec.source)
    return dict(before=before, after=after, newly_initialised=new_weights,
                train_examples=len(train_set), carried_from_source=carried,
                head_warmup=asdict(head_result) if head_result else None,
                parameters=sum(p.numel() for p in model.parameters()))


def domain_adaptation_spec(profile) -> PretrainSpec:
    """Chapter 5's continued pre-training of the profile's encoder on IMDb (reused in 7)."""
    return spec_for(profile, source=profile.model_name, max_length=profile.max_length,
                    steps=profile.dapt_steps, batch_size=profile.dapt_batch_size,
                    head_warmup_steps=max(1, profile.dapt_steps // 6), learning_rate=5e-5)


def spec_for(profile, source: str = SCRATCH, **overrides) -> PretrainSpec:
    """The profile's pre-training sizes (:class:`llmbook.core.profiles.Profile`), with overrides."""
    spec = PretrainSpec(source=source, corpus_size=profile.corpus_size,
                        eval_size=profile.mlm_eval_size, max_length=profile.mlm_max_length,
                        vocab_size=profile.scratch_vocab_size, hidden_size=profile.scratch_hidden,
                        layers=profile.scratch_layers, steps=profile.mlm_steps,
                        batch_size=profile.batch_size)
    return replace(spec, **overrides)
