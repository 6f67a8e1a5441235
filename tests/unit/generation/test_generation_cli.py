"""``llmbook generate`` (part "Generative models"): output, streaming and one-line errors."""

import pytest

from llmbook.cli import main
from llmbook.generation.decoding import generate_tokens

CONTEXT = 48


@pytest.fixture(scope="module")
def model_dir(tiny_gpt_dir, tmp_path_factory):
    """A 1-layer GPT-2 with a 300-entry byte-level BPE vocabulary and a 48-token context."""
    return tiny_gpt_dir(tmp_path_factory.mktemp("tiny-gpt"), context=CONTEXT)


def _expected(directory, prompt, new_tokens, **settings):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    out = generate_tokens(model, ids, new_tokens, eos_token_id=tokenizer.eos_token_id,
                          **settings)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_greedy_output_is_the_loops(model_dir, capsys):
    assert main(["generate", "--model", str(model_dir), "the film", "--max-new-tokens",
                 "10"]) == 0
    out = capsys.readouterr().out
    assert out == _expected(model_dir, "the film", 10) + "\n" and out.strip()


def test_seeded_sampling_streams_the_same_text(model_dir, capsys):
    options = ["--temperature", "0.9", "--top-k", "50", "--top-p", "0.95", "--seed", "3",
               "--max-new-tokens", "12"]
    main(["generate", "--model", str(model_dir), "a dull", *options])
    whole = capsys.readouterr().out
    main(["generate", "--model", str(model_dir), "a dull", *options, "--stream"])
    assert capsys.readouterr().out == whole
    expected = _expected(model_dir, "a dull", 12, do_sample=True, temperature=0.9, top_k=50,
                         top_p=0.95, seed=3)
    assert whole == expected + "\n"
    main(["generate", "--model", str(model_dir), "a dull", *options[:-4], "--seed", "4",
          "--max-new-tokens", "12"])
    assert capsys.readouterr().out != whole


@pytest.mark.parametrize(("arguments", "message"), [
    (["--temperature", "-0.5"], "argument --temperature: must be >= 0, got -0.5"),
    (["--top-p", "0"], "argument --top-p: must be in (0, 1], got 0"),
    (["--top-p", "1.5"], "argument --top-p: must be in (0, 1], got 1.5"),
    (["--top-k", "-3"], "argument --top-k: must be >= 0, got -3"),
    (["--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1, got 0"),
    (["--temperature", "warm"], "argument --temperature: expected a number, got 'warm'"),
])
def test_bad_values_end_with_a_one_line_error(model_dir, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model", str(model_dir), "the film", *arguments])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.strip().splitlines()[-1] == f"llmbook generate: error: {message}"
    assert "Traceback" not in error


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_an_empty_prompt_is_refused(model_dir, capsys, prompt):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model", str(model_dir), prompt])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: argument prompt: the prompt is empty")


def test_a_prompt_longer_than_the_context_is_refused(model_dir):
    long_prompt = " ".join(["the film was great"] * 30)
    with pytest.raises(SystemExit, match=f"longer than the model's context of {CONTEXT} tokens"):
        main(["generate", "--model", str(model_dir), long_prompt])
    fits_alone = " ".join(["the film"] * 8)
    with pytest.raises(SystemExit, match="with --max-new-tokens 40, more than the model's"):
        main(["generate", "--model", str(model_dir), fits_alone, "--max-new-tokens", "40"])


def test_a_missing_model_directory_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="not a model directory"):
        main(["generate", "--model", str(tmp_path / "nowhere"), "the film"])


def test_pretrain_clm_writes_a_model_that_generate_reads(tmp_path, capsys):
    out = tmp_path / "gpt"
    assert main(["pretrain", "--objective", "clm", "--from-scratch", "--profile", "smoke",
                 "--steps", "2", "--out", str(out)]) == 0
    assert "held-out perplexity" in capsys.readouterr().out
    assert main(["generate", "--model", str(out), "This movie was", "--max-new-tokens", "4",
                 "--seed", "0"]) == 0
    assert capsys.readouterr().out.endswith("\n")


@pytest.mark.parametrize("start", [["--from", "minilm"], ["--from-scratch", "--whole-word"]])
def test_pretrain_clm_refuses_what_only_masked_lm_does(tmp_path, capsys, start):
    assert main(["pretrain", "--objective", "clm", *start, "--profile", "smoke",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--objective clm trains a GPT-2 from scratch" in capsys.readouterr().err
