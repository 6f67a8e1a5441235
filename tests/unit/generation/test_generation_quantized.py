"""int8 dynamic quantization for CPU decoding (part "Generative models", chapter "Generating
text and the KV cache"): which layers change, how close the logits stay, ``--int8``."""

import pandas as pd
import pytest
import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from llmbook.cli import main
from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.decoding import generate_tokens
from llmbook.generation.quantized import (
    KEEP_FP32,
    compare_precisions,
    conv1d_to_linear,
    count_quantized,
    int8_pays_off,
    linear_input_outliers,
    quantize_for_cpu,
)

TEXTS = ["the film was great and the acting superb", "a dull film, I hated it"] * 5


def _llama(vocab_size=100):  # grouped-query attention, as in SmolLM2
    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, vocab_size=vocab_size,
                         max_position_embeddings=64, bos_token_id=None, eos_token_id=None)
    return LlamaForCausalLM(config).eval()


def _gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64,
                        bos_token_id=None, eos_token_id=None)
    return GPT2LMHeadModel(config).eval()


def _linear_names(model):
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def test_every_linear_but_the_kept_ones_is_replaced():
    model = _llama()
    quantized = quantize_for_cpu(model)
    assert count_quantized(quantized) == 2 * 6  # q, k, v, o, gate, up in each of 2 layers
    assert _linear_names(quantized) == set(KEEP_FP32)  # down_proj and lm_head stay fp32
    assert count_quantized(model) == 0  # the original is untouched
    assert count_quantized(quantize_for_cpu(model, keep=())) == 2 * 7 + 1


@pytest.mark.parametrize("keep", [KEEP_FP32, ()], ids=["default", "every-linear"])
def test_quantized_logits_stay_close_to_fp32(keep):
    model = _llama()
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        logits = quantize_for_cpu(model, keep=keep)(input_ids=ids).logits
    error = (logits - reference).abs().max() / reference.abs().max()
    assert 0 < error < 0.05
    correlation = torch.corrcoef(torch.stack([logits.flatten(), reference.flatten()]))[0, 1]
    assert correlation > 0.99


def test_gpt2_conv1d_layers_become_equal_linears_and_are_quantized():
    model = _gpt2()
    ids = torch.randint(0, 100, (1, 10))
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        converted = conv1d_to_linear(_gpt2())
        assert torch.allclose(converted(input_ids=ids).logits, reference, atol=1e-5)
    assert {"c_attn", "c_proj", "c_fc"} <= _linear_names(converted)
    assert count_quantized(quantize_for_cpu(model)) == 2 * 4  # c_attn, c_proj, c_fc, c_proj


class _Probe(nn.Module):
    """Embeds ids as fixed vectors and applies one linear layer called ``proj``."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(2, 4)
        self.embed.weight.data = torch.tensor([[1.0, 1.0, 1.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
        self.proj = nn.Linear(4, 2)

    def forward(self, input_ids):
        return self.proj(self.embed(input_ids))


def test_input_outliers_by_hand():
    table = linear_input_outliers(_Probe(), torch.tensor([[0, 0]]))
    # inputs 1, 1, 1, 9 (twice): largest 9, mean 3
    assert table.loc["proj"].tolist() == pytest.approx([1, 9.0, 3.0])
    table = linear_input_outliers(_llama(), torch.randint(0, 100, (1, 8)))
    assert table.loc["q_proj", "layers"] == 2 and table.loc["lm_head", "layers"] == 1
    assert (table["max / mean |input|"] >= 1).all()


def test_precisions_side_by_side_and_the_rule():
    tokenizer = train_byte_level_bpe(TEXTS, vocab_size=300)
    model = _llama(vocab_size=len(tokenizer))
    table = compare_precisions({"fp32": model, "int8": quantize_for_cpu(model)}, tokenizer,
                               TEXTS[:2], torch.tensor([[1, 2, 3]]), new_tokens=4, repeats=1)
    assert list(table.index) == ["fp32", "int8"] and (table["tokens/s"] > 0).all()
    assert table.loc["fp32", "speed-up"] == 1 and table.loc["fp32", "perplexity change"] == 0
    assert abs(table.loc["int8", "perplexity change"]) < 0.05
    rule = pd.DataFrame({"speed-up": [1.0, 1.4, 1.4, 0.9],
                         "perplexity change": [0.0, 0.019, 0.021, 0.0]},
                        index=["fp32", "ok", "worse", "slower"])
    assert int8_pays_off(rule, "ok")
    assert not int8_pays_off(rule, "worse") and not int8_pays_off(rule, "slower")
    assert int8_pays_off(rule, "worse", tolerance=0.05)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A saved 2-layer Llama (grouped-query attention) with a byte-level BPE vocabulary."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = train_byte_level_bpe(TEXTS, vocab_size=300)
    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128,
                         vocab_size=len(tokenizer), max_position_embeddings=64,
                         bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id, initializer_range=0.5)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_int8_flag_decodes_with_the_quantized_model(llama_dir, capsys):
    assert main(["generate", "--model", str(llama_dir), "the film", "--int8",
                 "--max-new-tokens", "10"]) == 0
    out = capsys.readouterr().out
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    model = quantize_for_cpu(AutoModelForCausalLM.from_pretrained(llama_dir).eval())
    ids = tokenizer("the film", return_tensors="pt").input_ids
    expected = generate_tokens(model, ids, 10, eos_token_id=tokenizer.eos_token_id)
    text = tokenizer.decode(expected[0, ids.shape[1]:], skip_special_tokens=True)
    assert out == text + "\n" and out.strip()
