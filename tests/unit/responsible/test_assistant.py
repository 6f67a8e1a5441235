"""The support-desk assistant end to end (chapter 16): routing by the classifier, replies by
the chat model, each reply checked for its topic's fact."""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from llmbook.generation.instruction_sets import SUPPORT_FACTS
from llmbook.models.inference import load_for_inference, predict_proba
from llmbook.models.loading import SMOLLM2_FILE, smollm2_dir
from llmbook.responsible.assistant import (
    CUSTOMER_MESSAGES,
    ESCALATE,
    REPLY,
    assistant_routes,
    escalation,
)


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir, tmp_path_factory):
    directory = tiny_classifier_dir(tmp_path_factory.mktemp("clf"), initializer_range=0.5)
    return load_for_inference(directory)


@pytest.fixture(scope="module")
def assistant():
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_FILE)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=512)
    return tokenizer, LlamaForCausalLM(config).eval()


def test_escalation_needs_a_confident_negative():
    probabilities = np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    assert escalation(probabilities, 0.8).tolist() == [True, False, False, False]
    assert escalation(probabilities, 0.5).tolist() == [True, True, False, True]


def test_messages_name_topics_of_the_knowledge_base():
    topics = {fact.topic for fact in SUPPORT_FACTS}
    assert len(CUSTOMER_MESSAGES) == 10 and {m.topic for m in CUSTOMER_MESSAGES} <= topics


@pytest.mark.parametrize("threshold", [0.0, 0.55, 1.01])
def test_routes_follow_the_classifier_and_only_replies_are_generated(classifier, assistant,
                                                                     threshold):
    table = assistant_routes(CUSTOMER_MESSAGES, classifier, threshold, assistant,
                             max_new_tokens=4)
    probabilities = predict_proba(classifier[1], classifier[0], table["message"].tolist())
    expected = np.where(escalation(probabilities, threshold), ESCALATE, REPLY)
    assert table["route"].tolist() == expected.tolist() and len(table) == 10
    escalated = table["route"] == ESCALATE
    assert (table.loc[escalated, "reply"] == "").all()
    assert table.loc[escalated, "right_fact"].isna().all()
    assert table.loc[~escalated, "right_fact"].map(lambda v: isinstance(v, bool)).all()
    if threshold > 1:
        assert not escalated.any()


def test_open_book_replies_carry_the_retrieved_entry(classifier, assistant):
    class FirstFact:  # a stand-in knowledge base that always returns one entry
        def retrieve(self, questions):
            return [SUPPORT_FACTS[0]] * len(questions)

    table = assistant_routes(CUSTOMER_MESSAGES, classifier, 1.01, assistant, max_new_tokens=4,
                             knowledge_base=FirstFact())
    expected = [m.topic == SUPPORT_FACTS[0].topic for m in CUSTOMER_MESSAGES]
    assert table["retrieved_right"].tolist() == expected
    assert "retrieved_right" not in assistant_routes(CUSTOMER_MESSAGES, classifier, 1.01,
                                                     assistant, max_new_tokens=4).columns
