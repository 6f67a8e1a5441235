"""Text data augmentation for classification (chapter 13): EDA-style word operations and
contextual substitution with a masked language model.

EDA (Wei & Zou, 2019) makes a new sentence from an old one with one of four operations: synonym
replacement, random insertion (of a synonym of some word), random swap and random deletion.
WordNet cannot be downloaded offline, so the "synonyms" here are the nearest neighbours of a
word in the encoder's *input-embedding* matrix, among whole-word tokens
(:class:`EmbeddingNeighbours`): words that occur in similar contexts -- often inflections or
true synonyms, sometimes antonyms ("good"/"bad"), which can flip a sentiment label.

Contextual substitution (:class:`MaskedLMSubstituter`) masks some words and samples each
replacement from a masked LM's top predictions for that slot, so the new word fits its
context.  It needs a masked LM with a *trained* head: chapter 5's domain-adapted MiniLM.

Augmented examples keep the label of the sentence they were made from; every function is
deterministic given its seed (or NumPy ``Generator``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from datasets import Dataset, Features, concatenate_datasets

from llmbook.models.loading import load_encoder, load_mlm, load_tokenizer

#: Words that EDA never replaces or uses as an anchor for insertion (function words).
STOPWORDS = frozenset(
    "a an the and or but if then so of in on at to for from by with about as into than too "
    "very is are was were be been being am do does did have has had i me my we our you your "
    "he him his she her it its they them their this that these those there here what which "
    "who whom when where why how all any both each more most other some such no nor not only "
    "own same can will just should now 's s t".split()
)

#: One augmented copy of a batch of texts: ``augmenter(texts, rng) -> new_texts``.
Augmenter = Callable[[Sequence[str], np.random.Generator], list[str]]

METHODS = ("eda", "mlm")


def is_content_word(word: str) -> bool:
    """Alphabetic, at least three letters and not a stop word: a word worth replacing."""
    return word.isalpha() and len(word) >= 3 and word.lower() not in STOPWORDS


def random_swap(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Swap two randomly chosen positions, ``n`` times."""
    words = list(words)
    if len(words) < 2:
        return words
    for _ in range(n):
        i, j = rng.choice(len(words), size=2, replace=False)
        words[i], words[j] = words[j], words[i]
    return words


def random_deletion(words: Sequence[str], p: float, rng: np.random.Generator) -> list[str]:
    """Drop each word with probability ``p``, keeping at least one word."""
    if not 0 <= p < 1:
        raise ValueError(f"deletion probability must be in [0, 1), got {p}")
    kept = [w for w in words if rng.random() >= p]
    if kept or not words:
        return kept
    return [words[rng.integers(len(words))]]


def synonym_replacement(words: Sequence[str], n: int, rng: np.random.Generator,
                        synonyms: Callable[[str], list[str]]) -> list[str]:
    """Replace up to ``n`` distinct content words, each by one of its ``synonyms``."""
    words = list(words)
    candidates = [i for i, w in enumerate(words) if is_content_word(w) and synonyms(w)]
    for i in rng.permutation(candidates)[:n]:
        options = synonyms(words[i])
        words[i] = options[rng.integers(len(options))]
    return words


def random_insertion(words: Sequence[str], n: int, rng: np.random.Generator,
                     synonyms: Callable[[str], list[str]]) -> list[str]:
    """Insert a synonym of a random content word at a random position, ``n`` times."""
    words = list(words)
    anchors = [w for w in words if is_content_word(w) and synonyms(w)]
    if not anchors:
        return words
    for _ in range(n):
        options = synonyms(anchors[rng.integers(len(anchors))])
        words.insert(int(rng.integers(len(words) + 1)), options[rng.integers(len(options))])
    return words


class EmbeddingNeighbours:
    """``neighbours(word)``: the ``k`` whole-word tokens nearest to ``word`` (cosine) in an
    input-embedding matrix, an offline stand-in for WordNet synonyms.

    Only content words (:func:`is_content_word`) that are single tokens of the vocabulary
    have neighbours; others get ``[]``.  Results are cached.
    """

    def __init__(self, tokenizer, embeddings: torch.Tensor, k: int = 5):
        vocab = tokenizer.get_vocab()
        words = sorted((w for w in vocab if is_content_word(w)), key=vocab.get)
        self.k = k
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        vectors = embeddings.detach().float()[[vocab[w] for w in words]]
        self.vectors = torch.nn.functional.normalize(vectors, dim=1)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_model(cls, name: str | None = None, k: int = 5) -> EmbeddingNeighbours:
        """Neighbours in the input embeddings of the encoder ``name`` (default MiniLM)."""
        encoder = load_encoder(name)
        return cls(load_tokenizer(name), encoder.get_input_embeddings().weight, k)

    def __call__(self, word: str) -> list[str]:
        word = word.lower()
        if word not in self._cache:
            row = self.index.get(word)
            if row is None:
                self._cache[word] = []
            else:
                similarity = self.vectors @ self.vectors[row]
                similarity[row] = -np.inf
                top = similarity.topk(self.k).indices.tolist()
                self._cache[word] = [self.words[i] for i in top]
        return self._cache[word]


def eda(text: str, rng: np.random.Generator, synonyms: Callable[[str], list[str]],
        alpha: float = 0.1) -> str:
    """One EDA sentence: one of the four operations, picked at random, changing about
    ``alpha`` of the words (at least one)."""
    words = text.split()
    n = max(1, round(alpha * len(words)))
    operation = rng.integers(4)
    if operation == 0:
        words = synonym_replacement(words, n, rng, synonyms)
    elif operation == 1:
        words = random_insertion(words, n, rng, synonyms)
    elif operation == 2:
        words = random_swap(words, n, rng)
    else:
        words = random_deletion(words, alpha, rng)
    return " ".join(words)


def eda_augmenter(synonyms: Callable[[str], list[str]], alpha: float = 0.1) -> Augmenter:
    """An :data:`Augmenter` applying :func:`eda` to each text."""
    def augment(texts: Sequence[str], rng: np.random.Generator) -> list[str]:
        return [eda(text, rng, synonyms, alpha) for text in texts]
    return augment


class MaskedLMSubstituter:
    """An :data:`Augmenter`: replace each content word with probability ``probability`` (at
    least one per text) by a word sampled from the masked LM's ``top_k`` whole-word,
    content-word predictions for that slot (the original excluded), weighted by probability.

    All chosen words of a text are masked at once, one ``[MASK]`` per word, and predicted in a
    single forward pass; a word whose mask falls beyond ``max_length`` is kept.
    """

    def __init__(self, model, tokenizer, probability: float = 0.15, top_k: int = 10,
                 batch_size: int = 64, max_length: int = 128):
        if not 0 < probability <= 1:
            raise ValueError(f"probability must be in (0, 1], got {probability}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.probability = probability
        self.top_k = top_k
        self.batch_size = batch_size
        self.max_length = max_length
        vocab = tokenizer.get_vocab()
        allowed = torch.zeros(len(tokenizer), dtype=torch.bool)
        allowed[[i for w, i in vocab.items() if is_content_word(w)]] = True
        self.allowed = allowed

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> MaskedLMSubstituter:
        """From a masked-LM directory such as chapter 5's domain-adapted MiniLM."""
        model, report = load_mlm(name)
        if report.newly_initialised:
            raise ValueError(f"{name} has an untrained masked-LM head "
                             f"({', '.join(report.newly_initialised)}): its predictions "
                             "are noise. Use a trained masked LM (chapter 5).")
        return cls(model, load_tokenizer(name), **kwargs)

    def _choose(self, words: list[str], rng: np.random.Generator) -> list[int]:
        content = [i for i, w in enumerate(words) if is_content_word(w)]
        chosen = [i for i in content if rng.random() < self.probability]
        if not chosen and content:
            chosen = [content[rng.integers(len(content))]]
        return chosen

    def __call__(self, texts: Sequence[str], rng: np.random.Generator) -> list[str]:
        split = [text.split() for text in texts]
        chosen = [self._choose(words, rng) for words in split]
        masked = [" ".join(self.tokenizer.mask_token if i in set(positions) else w
                           for i, w in enumerate(words))
                  for words, positions in zip(split, chosen, strict=True)]
        results = []
        for start in range(0, len(texts), self.batch_size):
            stop = start + self.batch_size
            logits = self._mask_logits(masked[start:stop])
            batch = zip(split[start:stop], chosen[start:stop], logits, strict=True)
            for words, positions, rows in batch:
                words = list(words)
                # fewer rows than positions when truncation cut masks off: those words stay
                for position, row in zip(positions, rows, strict=False):
                    words[position] = self._sample(row, words[position], rng)
                results.append(" ".join(words))
        return results

    def _mask_logits(self, texts: list[str]) -> list[torch.Tensor]:
        encoded = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt",
                                 return_token_type_ids=False)
        with torch.inference_mode():
            logits = self.model(**encoded).logits
        is_mask = encoded["input_ids"] == self.tokenizer.mask_token_id
        return [logits[row][is_mask[row]] for row in range(len(texts))]

    def _sample(self, logits: torch.Tensor, original: str, rng: np.random.Generator) -> str:
        logits = logits.masked_fill(~self.allowed, -torch.inf)
        original_id = self.tokenizer.convert_tokens_to_ids(original.lower())
        if original_id is not None and original_id != self.tokenizer.unk_token_id:
            logits[original_id] = -torch.inf
        top = logits.topk(self.top_k)
        weights = torch.softmax(top.values.double(), dim=0).numpy()
        choice = rng.choice(self.top_k, p=weights / weights.sum())
        return self.tokenizer.convert_ids_to_tokens(int(top.indices[choice]))


def make_augmenter(method: str, model_name: str | None = None,
                   mlm_model: str | None = None) -> Augmenter:
    """The augmenter of ``method``: ``"eda"`` (neighbours in ``model_name``'s embeddings) or
    ``"mlm"`` (substitution by the masked LM in directory ``mlm_model``)."""
    if method == "eda":
        return eda_augmenter(EmbeddingNeighbours.from_model(model_name))
    if method == "mlm":
        if not mlm_model:
            raise ValueError("'mlm' augmentation needs a trained masked LM (mlm_model)")
        return MaskedLMSubstituter.from_pretrained(mlm_model)
    raise ValueError(f"unknown augmentation {method!r}; choose one of {METHODS}")


def augment_dataset(dataset: Dataset, augmenter: Augmenter, copies: int = 1,
                    seed: int = 0) -> Dataset:
    """``dataset`` followed by ``copies`` augmented copies of its texts, labels unchanged.

    Only the ``text`` and ``label`` columns are kept.  Row ``i`` of copy ``c`` (row
    ``c * len(dataset) + i`` of the result) is made from original row ``i``.
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    rng = np.random.default_rng(seed)
    texts, labels = list(dataset["text"]), list(dataset["label"])
    features = Features({"text": dataset.features["text"], "label": dataset.features["label"]})
    parts = [Dataset.from_dict({"text": texts, "label": labels}, features=features)]
    for _ in range(copies):
        parts.append(Dataset.from_dict({"text": augmenter(texts, rng), "label": labels},
                                       features=features))
    return concatenate_datasets(parts)
