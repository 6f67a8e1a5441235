"""The instruction sets and their scoring (part "Generative models", instruction tuning)."""

import pytest

from llmbook.generation.instruction_sets import (
    SUPPORT_FACTS,
    SUPPORT_SYSTEM,
    TRAINED_QUESTIONS,
    carries_fact,
    longest_copied_ngram,
    open_book_system,
    parse_sentiment,
    sentiment_conversations,
    support_conversations,
    writing_conversations,
)


def test_sentiment_conversations_and_parsing():
    conversations = sentiment_conversations(["A gem.", "Awful."], [1, 0], "Positive or not?")
    assert conversations[0] == [{"role": "user", "content": "Positive or not?\n\nReview: A gem."},
                                {"role": "assistant", "content": "positive"}]
    assert len(sentiment_conversations(["A gem."], None, "Q")[0]) == 1  # a prompt to answer
    assert parse_sentiment("Positive.") == 1 and parse_sentiment("It is negative") == 0
    assert parse_sentiment("The review is not positive, it is negative.") == 1  # the first word
    assert parse_sentiment("I cannot tell.") is None and parse_sentiment("positively") is None


def test_writing_conversations_ask_for_the_labels_sentiment():
    (one,) = writing_conversations(["Dull and long."], [0])
    assert one[0]["content"] == "Write a short negative movie review."
    assert one[1]["content"] == "Dull and long."


def test_longest_copied_ngram_by_hand():
    corpus = ["A dull, plodding film with no heart.", "Sharp and funny."]
    assert longest_copied_ngram("What a dull plodding film it was", corpus) == 4
    assert longest_copied_ngram("sharp and funny", corpus) == 3
    assert longest_copied_ngram("funny with no", corpus) == 2  # "with no" only; not across texts
    assert longest_copied_ngram("nothing here", corpus) == 0
    assert longest_copied_ngram("", corpus) == 0


def test_support_questions_split_into_trained_and_held_out():
    train, train_facts = support_conversations()
    held_out, held_facts = support_conversations(held_out=True, with_answers=False)
    assert len(train) == TRAINED_QUESTIONS * len(SUPPORT_FACTS)
    assert len(held_out) == sum(len(f.questions) for f in SUPPORT_FACTS) - len(train)
    asked = {c[1]["content"] for c in train}
    assert asked.isdisjoint(c[1]["content"] for c in held_out)  # no phrasing in both
    assert train[0][0] == {"role": "system", "content": SUPPORT_SYSTEM}
    assert train[0][-1]["content"] == train_facts[0].answer and len(held_out[0]) == 2
    assert {f.topic for f in held_facts} == {f.topic for f in SUPPORT_FACTS}
    assert all(carries_fact(f.answer, f) for f in SUPPORT_FACTS)  # every answer states its fact


def test_open_book_conversations_carry_one_entry_per_question():
    closed, facts = support_conversations(held_out=True, with_answers=False)
    wrong = facts[1:] + facts[:1]  # every question gets another question's entry
    open_book, open_facts = support_conversations(held_out=True, with_answers=False,
                                                  entries=wrong)
    assert open_facts == facts  # scoring still asks for each question's own fact
    assert [c[1:] for c in open_book] == [c[1:] for c in closed]
    assert [c[0]["content"] for c in open_book] == [open_book_system(f) for f in wrong]
    assert open_book_system(facts[0]).endswith(facts[0].answer)
    with pytest.raises(ValueError, match="entries for"):
        support_conversations(held_out=True, entries=facts[:-1])


def test_carries_fact_needs_every_key_term_as_a_whole_word():
    devices = next(f for f in SUPPORT_FACTS if f.topic == "devices")
    assert carries_fact("Two screens on Standard, four on Premium.", devices)
    assert not carries_fact("Up to 12 screens, or 4.", devices)  # "2" is not in "12"
    price = next(f for f in SUPPORT_FACTS if f.topic == "price")
    assert not carries_fact("It costs 8.99 euros.", price)
