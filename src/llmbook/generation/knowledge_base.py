"""The support desk's knowledge base in the prompt: retrieval in its simplest form (part
"Generative models", chapter "Instruction tuning with LoRA"; chapter 16's assistant).

Tuning on a few dozen conversations does not store facts in SmolLM2's weights (chapter 8
measures it: the *closed-book* score). The standard remedy is to look the fact up and put it
in the prompt, so the model only has to *use* it: retrieval-augmented generation.
:class:`KnowledgeBase` embeds the trained phrasings of every fact with chapter 9's frozen
MiniLM (mean pooling, :func:`~llmbook.models.embeddings.embed_texts`) and answers a question
with the fact of its nearest phrasing (cosine similarity);
:func:`~llmbook.generation.instruction_sets.open_book_system` writes that fact into the
support assistant's system message. Held-out phrasings are never indexed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmbook.generation.instruction_sets import (
    SUPPORT_FACTS,
    TRAINED_QUESTIONS,
    SupportFact,
)
from llmbook.models.embeddings import embed_texts
from llmbook.models.loading import load_encoder, load_tokenizer


class KnowledgeBase:
    """Nearest-phrasing retrieval over ``facts``: each fact is indexed by its first
    ``indexed_questions`` phrasings (the trained ones)."""

    def __init__(self, facts: Sequence[SupportFact] = SUPPORT_FACTS,
                 indexed_questions: int = TRAINED_QUESTIONS, encoder: str = "minilm"):
        self.facts = tuple(facts)
        pairs = [(question, fact) for fact in self.facts
                 for question in fact.questions[:indexed_questions]]
        self.indexed = [question for question, _ in pairs]
        self._fact_of_row = [fact for _, fact in pairs]
        self._tokenizer, self._model = load_tokenizer(encoder), load_encoder(encoder)
        self._index = self._embed(self.indexed)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed_texts(list(texts), model=self._model, tokenizer=self._tokenizer)

    def retrieve(self, questions: Sequence[str]) -> list[SupportFact]:
        """The fact whose indexed phrasing is most similar to each question."""
        similarity = self._embed(questions) @ self._index.T
        return [self._fact_of_row[row] for row in similarity.argmax(axis=1)]
