"""Instruction tuning (part "Generative models"): chat template, loss mask, LoRA on a decoder."""

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import TaskType
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from llmbook.generation.causal_lm import IGNORE_INDEX
from llmbook.generation.instruction import (
    SftCollator,
    chat_prompt,
    loss_mask_table,
    sft_features,
    tokenize_for_sft,
)
from llmbook.models.adapters import adapt, count_parameters
from llmbook.models.loading import SMOLLM2_FILE, smollm2_dir

CONVERSATION = [{"role": "user", "content": "Is this review positive or negative?\nA gem."},
                {"role": "assistant", "content": "positive"}]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_FILE)


@pytest.fixture(scope="module")
def tiny_llama(tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=128)
    return LlamaForCausalLM(config)


def test_prompt_and_answer_are_the_chat_template(tokenizer):
    features = sft_features(tokenizer, CONVERSATION, max_length=128)
    whole = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert whole.endswith("<|im_end|>\n")  # the template's newline after a turn is not learned
    expected = tokenizer(whole.removesuffix("\n"), add_special_tokens=False).input_ids
    assert features["input_ids"] == expected
    learned = [t for t, label in zip(features["input_ids"], features["labels"], strict=True)
               if label != IGNORE_INDEX]
    assert tokenizer.decode(learned) == "positive<|im_end|>"
    prompt = tokenizer(chat_prompt(tokenizer, CONVERSATION[:1]), add_special_tokens=False)
    assert features["labels"][:len(prompt.input_ids)] == [IGNORE_INDEX] * len(prompt.input_ids)
    table = loss_mask_table(tokenizer, features)
    assert table["learned"].sum() == len(learned) and table["token"].iloc[0] == "<|im_start|>"


def test_the_loss_is_the_mean_over_the_answer_tokens_only(tokenizer, tiny_llama):
    rows = [sft_features(tokenizer, CONVERSATION, 128),
            sft_features(tokenizer, [CONVERSATION[0] | {"content": "Awful."},
                                     {"role": "assistant", "content": "negative"}], 128)]
    batch = SftCollator(tokenizer.pad_token_id)(rows)
    out = tiny_llama(**batch)
    log_probs = F.log_softmax(out.logits[:, :-1].float(), dim=-1)
    targets = batch["labels"][:, 1:]
    answer = targets != IGNORE_INDEX
    by_hand = -log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)[answer].mean()
    assert torch.allclose(out.loss, by_hand, atol=1e-5)
    everything = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]),
                                 batch["input_ids"][:, 1:].reshape(-1))
    assert not torch.allclose(out.loss, everything)  # prompt tokens are not in it
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_too_long_conversations_are_dropped_and_counted(tokenizer):
    long = [CONVERSATION[0] | {"content": "word " * 200}, CONVERSATION[1]]
    assert sft_features(tokenizer, long, max_length=64) is None
    data, dropped = tokenize_for_sft(Dataset.from_dict({"messages": [CONVERSATION, long]}),
                                     tokenizer, max_length=64)
    assert len(data) == 1 and dropped == 1
    with pytest.raises(ValueError, match="fits"):
        tokenize_for_sft(Dataset.from_dict({"messages": [long]}), tokenizer, max_length=64)
    with pytest.raises(ValueError, match="assistant"):
        sft_features(tokenizer, CONVERSATION[:1], max_length=64)


def test_lora_on_a_decoder_adapts_query_and_value_projections(tiny_llama):
    model = adapt(LlamaForCausalLM(tiny_llama.config), "lora", rank=4, task=TaskType.CAUSAL_LM)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert {n.split(".")[-4] for n in names} == {"q_proj", "v_proj"}
    trainable, total = count_parameters(model)
    assert trainable < 0.1 * total
    with pytest.raises(ValueError, match="LoRA only"):
        adapt(LlamaForCausalLM(tiny_llama.config), "ia3", task=TaskType.CAUSAL_LM)
