"""Retrieval of the support desk's knowledge base with MiniLM (part "Generative models",
instruction tuning; chapter 16's assistant)."""

import pytest

from llmbook.generation.instruction_sets import (
    SUPPORT_FACTS,
    TRAINED_QUESTIONS,
    support_conversations,
)
from llmbook.generation.knowledge_base import KnowledgeBase


@pytest.fixture(scope="module")
def knowledge_base():
    return KnowledgeBase()


def test_only_the_trained_phrasings_are_indexed(knowledge_base):
    assert len(knowledge_base.indexed) == TRAINED_QUESTIONS * len(SUPPORT_FACTS)
    held_out, _ = support_conversations(held_out=True, with_answers=False)
    assert {c[-1]["content"] for c in held_out}.isdisjoint(knowledge_base.indexed)


def test_an_indexed_phrasing_retrieves_its_own_fact(knowledge_base):
    trained, facts = support_conversations(with_answers=False)
    assert knowledge_base.retrieve([c[-1]["content"] for c in trained]) == facts


def test_most_held_out_phrasings_find_their_fact(knowledge_base):
    held_out, facts = support_conversations(held_out=True, with_answers=False)
    found = knowledge_base.retrieve([c[-1]["content"] for c in held_out])
    assert sum(f is g for f, g in zip(found, facts, strict=True)) >= 0.6 * len(facts)


def test_a_smaller_knowledge_base_answers_from_its_own_facts():
    two = KnowledgeBase(facts=SUPPORT_FACTS[:2], indexed_questions=1)
    assert len(two.indexed) == 2
    assert set(two.retrieve(["anything at all", SUPPORT_FACTS[1].questions[0]])) <= set(
        SUPPORT_FACTS[:2])
    assert two.retrieve([SUPPORT_FACTS[1].questions[0]]) == [SUPPORT_FACTS[1]]
