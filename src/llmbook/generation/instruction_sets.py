"""The instruction sets of chapter "Instruction tuning with LoRA" (part "Generative models"),
built from the book's real data, each with a held-out part, and how their answers are scored.

1. **Sentiment as an instruction** (Rotten Tomatoes): chapter 11's zero-shot question, answered
   with one word; :func:`parse_sentiment` reads a generated answer back as a label.
2. **Controllable writing**: "Write a short positive/negative movie review.", answered with a
   real Rotten Tomatoes training snippet of that sentiment; :func:`longest_copied_ngram`
   checks that generated reviews are not copies of the training texts.
3. **A support-desk assistant** for the source article's customer-service case: questions
   about *Reelhouse*, a fictional film-streaming service invented for this book (the
   knowledge base :data:`SUPPORT_FACTS` is synthetic), each fact asked in several ways; some
   phrasings are trained on and the others held out.  :func:`carries_fact` scores an answer
   by whether it states the fact's key terms.  A conversation is *closed book* (the model
   answers from its weights) or *open book* (:func:`open_book_system`: the fact's
   knowledge-base entry is in the system message).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Set 1's question (chapter 11 asks SmolLM2 the same, zero-shot); the review follows.
SENTIMENT_QUESTION = ("Is the sentiment of this movie review positive or negative? "
                      "Answer in one word.")

SUPPORT_SYSTEM = ("You are the support assistant of Reelhouse, a film-streaming service. "
                  "Answer in one or two sentences.")

WRITING_INSTRUCTION = "Write a short {sentiment} movie review."

SENTIMENT_WORDS = ("negative", "positive")  # label 0, label 1


def conversation(user: str, answer: str | None = None, system: str | None = None) -> list[dict]:
    """Chat messages: an optional system message, the user's turn and (for training) the
    assistant's answer."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def sentiment_conversations(texts: Sequence[str], labels: Sequence[int] | None,
                            question: str = SENTIMENT_QUESTION) -> list[list[dict]]:
    """Set 1: ``question``, then the review; the answer is the label's word (with labels)."""
    labels = labels if labels is not None else [None] * len(texts)
    return [conversation(f"{question}\n\nReview: {text}",
                         None if label is None else SENTIMENT_WORDS[label])
            for text, label in zip(texts, labels, strict=True)]


def parse_sentiment(answer: str) -> int | None:
    """The label a generated answer names (its first sentiment word), ``None`` if neither."""
    match = re.search(r"\b(negative|positive)\b", answer.lower())
    return None if match is None else SENTIMENT_WORDS.index(match.group(1))


def writing_conversations(texts: Sequence[str] | None, labels: Sequence[int]) -> list[list[dict]]:
    """Set 2: the instruction for each label's sentiment; the answer is the review text."""
    texts = texts if texts is not None else [None] * len(labels)
    return [conversation(WRITING_INSTRUCTION.format(sentiment=SENTIMENT_WORDS[label]), text)
            for text, label in zip(texts, labels, strict=True)]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def longest_copied_ngram(sample: str, corpus: Sequence[str]) -> int:
    """Length in words of the longest run of ``sample``'s words that occurs, word for word,
    in one of the ``corpus`` texts (lower-cased, punctuation ignored)."""
    haystack = "\n".join(" " + " ".join(_words(text)) + " " for text in corpus)
    words, longest = _words(sample), 0
    for start in range(len(words)):
        end = start + longest + 1  # only a longer run can change the answer
        while end <= len(words) and f" {' '.join(words[start:end])} " in haystack:
            longest, end = end - start, end + 1
    return longest


@dataclass(frozen=True)
class SupportFact:
    """One fact of the knowledge base: the answer to train on, the key terms a correct answer
    states (each entry a set of alternatives, all entries required) and ways of asking."""

    topic: str
    answer: str
    key_terms: tuple[tuple[str, ...], ...]
    questions: tuple[str, ...]


#: The synthetic knowledge base of Reelhouse (a fictional service; no real company's policy).
SUPPORT_FACTS: tuple[SupportFact, ...] = (
    SupportFact("price", "The Standard plan costs 8.99 euros a month and Premium costs 13.99.",
                (("8.99",), ("13.99",)),
                ("How much does Reelhouse cost?", "What are your prices?",
                 "How much is a subscription per month?", "What do the plans cost?",
                 "Is Reelhouse expensive? What's the monthly price?")),
    SupportFact("cancel", "You can cancel any time under Account > Membership; you keep access "
                "until the end of the month you paid for.",
                (("account",), ("membership",)),
                ("How do I cancel my subscription?", "I want to stop my membership.",
                 "Where can I cancel?", "How can I end my Reelhouse plan?",
                 "Can I quit Reelhouse, and how?")),
    SupportFact("devices", "You can stream on up to 2 screens at once with Standard and 4 with "
                "Premium.", (("2", "two"), ("4", "four")),
                ("How many screens can I watch on at the same time?",
                 "Can my family watch on several devices at once?",
                 "What is the limit of simultaneous streams?",
                 "How many people can use one account at once?",
                 "Is there a limit on devices streaming together?")),
    SupportFact("offline", "Downloads for offline viewing are included in Premium only, up to "
                "25 titles.", (("premium",), ("25",)),
                ("Can I download films to watch offline?", "Is there an offline mode?",
                 "How do downloads work?", "Can I save movies on my phone for a flight?",
                 "Which plan lets me download titles?")),
    SupportFact("refund", "Refunds are given within 14 days of a payment if you have watched "
                "nothing since.", (("14",), ("refund", "refunds", "money back")),
                ("Can I get a refund?", "I was charged by mistake, can I get my money back?",
                 "What is your refund policy?", "How long do I have to ask for a refund?",
                 "Do you give money back if I did not use the service?")),
    SupportFact("quality", "Standard streams in full HD (1080p); Premium adds 4K and HDR.",
                (("1080p", "full hd"), ("4k",)),
                ("What video quality do you offer?", "Do you have 4K?",
                 "Which resolution can I watch in?", "Is the picture HD?",
                 "Does Premium have better image quality?")),
    SupportFact("password", "Use 'Forgot password' on the sign-in page and we will email you a "
                "reset link.", (("forgot password",), ("email", "e-mail")),
                ("I forgot my password.", "How do I reset my password?",
                 "I can't log in, what do I do?", "My password doesn't work anymore.",
                 "How can I change a password I don't remember?")),
    SupportFact("subtitles", "Subtitles are available in 12 languages; turn them on with the "
                "speech-bubble icon during playback.", (("12", "twelve"), ("speech-bubble",
                                                                        "speech bubble")),
                ("How do I turn on subtitles?", "Do films have subtitles?",
                 "Where are the captions?", "How many subtitle languages are there?",
                 "Can I watch with subtitles in my language?")),
    SupportFact("trial", "New members get a free 7-day trial; you can cancel before it ends "
                "and pay nothing.", (("7", "seven"), ("free",)),
                ("Is there a free trial?", "Can I try Reelhouse before paying?",
                 "How long is the trial period?", "Do you offer a test period?",
                 "Can I watch for free first?")),
    SupportFact("payment", "We accept credit and debit cards, PayPal and Reelhouse gift cards.",
                (("paypal",), ("card", "cards")),
                ("Which payment methods do you accept?", "Can I pay with PayPal?",
                 "How can I pay for my subscription?", "Do you take debit cards?",
                 "What ways are there to pay?")),
)

#: How many of each fact's questions are trained on; the rest are held out.
TRAINED_QUESTIONS = 3


def open_book_system(fact: SupportFact) -> str:
    """The support assistant's system message with ``fact``'s knowledge-base entry in it
    (the *open-book* form; :mod:`llmbook.generation.knowledge_base` retrieves the entry)."""
    return f"{SUPPORT_SYSTEM} Knowledge base entry: {fact.answer}"


def support_conversations(held_out: bool = False, with_answers: bool = True,
                          entries: Sequence[SupportFact] | None = None
                          ) -> tuple[list[list[dict]], list[SupportFact]]:
    """Set 3: ``(conversations, the fact each asks about)``; the first
    :data:`TRAINED_QUESTIONS` phrasings of every fact for training, the others held out.

    With ``entries`` (one knowledge-base entry per question, in the order returned) each
    system message carries its entry (:func:`open_book_system`); without, the model must
    answer from its weights alone (closed book)."""
    chosen = slice(TRAINED_QUESTIONS, None) if held_out else slice(0, TRAINED_QUESTIONS)
    pairs = [(question, fact) for fact in SUPPORT_FACTS for question in fact.questions[chosen]]
    if entries is not None and len(entries) != len(pairs):
        raise ValueError(f"{len(entries)} knowledge-base entries for {len(pairs)} questions")
    systems = ([SUPPORT_SYSTEM] * len(pairs) if entries is None
               else [open_book_system(entry) for entry in entries])
    conversations = [conversation(q, fact.answer if with_answers else None, system)
                     for (q, fact), system in zip(pairs, systems, strict=True)]
    return conversations, [fact for _, fact in pairs]


def _mentions(text: str, term: str) -> bool:
    """``term`` as a whole word or number ("2" is not in "12")."""
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text) is not None


def carries_fact(answer: str, fact: SupportFact) -> bool:
    """True when ``answer`` states every key term of ``fact`` (any of its alternatives)."""
    text = answer.lower()
    return all(any(_mentions(text, term) for term in alternatives)
               for alternatives in fact.key_terms)
