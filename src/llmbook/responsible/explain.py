"""Looking inside a fine-tuned classifier (chapter 17: interpretability and safety).

* **Token attributions** by integrated gradients (Sundararajan et al., 2017) over the word
  embeddings: the path from a baseline input (every real token replaced by ``[PAD]``, the
  special tokens kept) to the actual input is cut into ``steps`` pieces, the gradient of
  ``f``, the target class's log-odds ``log p - log(1 - p)``, is averaged along it (trapezoid
  rule) and multiplied by ``input - baseline``.  *Completeness* says the attributions add up
  to ``f(input) - f(baseline)``; :attr:`Attribution.completeness_gap` measures how far the
  numerical integral is from it.  :func:`gradient_x_input` is the one-step shortcut.  Log-odds
  rather than probabilities: a confident prediction's probability is flat (saturated) near
  the input, so its gradients, and gradient x input, would be close to zero.
* **Attention maps**: the attention weights of every layer and head (the model is switched to
  the ``eager`` attention implementation, the only one that returns them).
* **Failure analysis**: heuristic tags (negation, possible sarcasm markers, length) for
  test examples, and the error rate per tag.
* **Counterfactual bias probe**: swap gendered words or names in otherwise identical texts and
  measure how the predicted probability moves (:func:`counterfactual_shift`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from llmbook.data.tokenization import check_texts
from llmbook.models.inference import predict_proba


@dataclass
class Attribution:
    """Per-token attributions (in log-odds) of one text towards ``target`` (a class index)."""

    tokens: list[str]
    scores: np.ndarray
    target: int
    #: probability of ``target`` for the input
    probability: float
    #: log-odds of ``target`` for the input and for the baseline
    log_odds: float
    baseline_log_odds: float

    @property
    def completeness_gap(self) -> float:
        """``|sum(scores) - (f(input) - f(baseline))|``: 0 for an exact integral."""
        return abs(float(self.scores.sum()) - (self.log_odds - self.baseline_log_odds))


def _encode(tokenizer, text: str, max_length: int | None) -> dict:
    return tokenizer([text], truncation=max_length is not None, max_length=max_length,
                     return_tensors="pt")


def _baseline_ids(tokenizer, input_ids: torch.Tensor) -> torch.Tensor:
    """``input_ids`` with every non-special token replaced by ``[PAD]``."""
    special = torch.tensor(tokenizer.get_special_tokens_mask(
        input_ids[0].tolist(), already_has_special_tokens=True), dtype=torch.bool)
    return torch.where(special, input_ids[0], tokenizer.pad_token_id).unsqueeze(0)


def _log_odds(logits: torch.Tensor, target: int) -> torch.Tensor:
    """``log p - log(1 - p)`` of class ``target``, computed stably from the logits."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    others = torch.cat([log_p[:, :target], log_p[:, target + 1:]], dim=-1)
    return log_p[:, target] - torch.logsumexp(others, dim=-1)


def _target_log_odds(model, embeddings: torch.Tensor, attention_mask: torch.Tensor,
                     target: int) -> torch.Tensor:
    """Log-odds of ``target`` for a batch of word-embedding sequences."""
    mask = attention_mask.expand(embeddings.shape[0], -1)
    return _log_odds(model(inputs_embeds=embeddings, attention_mask=mask).logits, target)


def _path_attribution(model, tokenizer, text: str, target: int | None, alphas: torch.Tensor,
                      weights: torch.Tensor, max_length: int | None) -> Attribution:
    """``(input - baseline) * sum_i weights[i] * grad f(baseline + alphas[i] (input - baseline))``.

    ``alphas`` must start at 0 and end at 1 (the baseline and the input); all points of the
    path run as one batch, so memory grows with their number times the text length.
    """
    model.eval()
    encoded = _encode(tokenizer, text, max_length)
    embedding_layer = model.get_input_embeddings()
    with torch.no_grad():
        inputs = embedding_layer(encoded["input_ids"])
        baseline = embedding_layer(_baseline_ids(tokenizer, encoded["input_ids"]))
        probabilities = torch.softmax(model(**encoded).logits.float(), dim=-1)[0]
    target = int(probabilities.argmax()) if target is None else int(target)
    if not 0 <= target < probabilities.numel():
        raise ValueError(f"target must be a class index below {probabilities.numel()}")

    path = (baseline + alphas.view(-1, 1, 1) * (inputs - baseline)).requires_grad_(True)
    outputs = _target_log_odds(model, path, encoded["attention_mask"], target)
    (gradients,) = torch.autograd.grad(outputs.sum(), path)
    average_gradient = (weights.view(-1, 1, 1) * gradients).sum(dim=0)
    scores = ((inputs - baseline)[0] * average_gradient).sum(dim=-1)
    return Attribution(
        tokens=tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]),
        scores=scores.detach().numpy(), target=target, probability=float(probabilities[target]),
        log_odds=outputs[-1].item(), baseline_log_odds=outputs[0].item(),
    )


def integrated_gradients(model, tokenizer, text: str, target: int | None = None,
                         steps: int = 50, max_length: int | None = None) -> Attribution:
    """Integrated-gradients attribution of every token of ``text`` (see the module docstring).

    ``target`` defaults to the predicted class.  The integral over the straight path from
    the baseline is approximated by the trapezoid rule on ``steps`` intervals.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    weights = torch.full((steps + 1,), 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    return _path_attribution(model, tokenizer, text, target, torch.linspace(0.0, 1.0, steps + 1),
                             weights, max_length)


def gradient_x_input(model, tokenizer, text: str, target: int | None = None,
                     max_length: int | None = None) -> Attribution:
    """Gradient at the input times ``input - baseline``: one gradient, no completeness promise."""
    return _path_attribution(model, tokenizer, text, target, torch.tensor([0.0, 1.0]),
                             torch.tensor([0.0, 1.0]), max_length)


def merge_wordpieces(tokens: Sequence[str], scores: Sequence[float],
                     drop: Sequence[str] = ("[CLS]", "[SEP]", "[PAD]")
                     ) -> tuple[list[str], np.ndarray]:
    """Whole words and their attributions: ``##`` continuations join the previous piece and
    their scores add up (attributions are additive, so the total is unchanged); tokens in
    ``drop`` (zero by construction here) are left out."""
    if len(tokens) != len(scores):
        raise ValueError("need one score per token")
    words: list[str] = []
    merged: list[float] = []
    for token, score in zip(tokens, scores, strict=True):
        if token in drop:
            continue
        if token.startswith("##") and words:
            words[-1] += token[2:]
            merged[-1] += float(score)
        else:
            words.append(token)
            merged.append(float(score))
    return words, np.asarray(merged)


def attention_maps(model, tokenizer, text: str, max_length: int | None = None
                   ) -> tuple[list[str], np.ndarray]:
    """Tokens and attention weights, shape ``(layers, heads, tokens, tokens)``.

    Row ``i`` of a map is how token ``i`` distributes its attention (rows sum to 1).  The
    model is switched to eager attention: SDPA kernels do not return the weights.
    """
    if model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")
    model.eval()
    encoded = _encode(tokenizer, text, max_length)
    with torch.no_grad():
        attentions = model(**encoded, output_attentions=True).attentions
    if not attentions:
        raise RuntimeError("the model returned no attention weights")
    maps = torch.stack([layer[0] for layer in attentions]).float().numpy()
    return tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]), maps


#: Words that negate or invert what follows (matched as whole words, case-insensitive).
NEGATIONS = ("not", "no", "never", "nothing", "none", "nobody", "neither", "nor", "without",
             "hardly", "barely", "cannot")

#: Surface markers that *may* signal sarcasm or irony; none of them proves it.
SARCASM_MARKERS = (r"\byeah,? right\b", r"\boh,? (great|joy|wonderful|sure)\b",
                   r"\bsupposed to\b", r"\bat least\b", r"\bas if\b", r"\bi guess\b",
                   r"\bthanks a lot\b", r'"[^"]+"', r"!\s*\?|\?\s*!", r"\.\.\.")

_NEGATION = re.compile(r"\b(" + "|".join(NEGATIONS) + r")\b|n't\b", re.IGNORECASE)

_SARCASM = re.compile("|".join(SARCASM_MARKERS), re.IGNORECASE)


def failure_tags(texts: Sequence[str], n_tokens: Sequence[int]) -> pd.DataFrame:
    """Boolean tags per text: ``negation``, ``sarcasm_marker``, ``long`` (top length quartile).

    ``n_tokens`` are the texts' token counts (:func:`llmbook.data.tokenization.token_lengths`).
    """
    texts = check_texts(texts)
    n_tokens = np.asarray(n_tokens)
    if n_tokens.shape != (len(texts),):
        raise ValueError(f"need one token count per text, got {n_tokens.shape} for {len(texts)}")
    return pd.DataFrame({
        "negation": [bool(_NEGATION.search(t)) for t in texts],
        "sarcasm_marker": [bool(_SARCASM.search(t)) for t in texts],
        "long": n_tokens > np.quantile(n_tokens, 0.75),
    })


def error_rates_by_tag(tags: pd.DataFrame, correct: Sequence[bool]) -> pd.DataFrame:
    """Per tag: examples with / without it, the error rate of each group, their ratio, and
    ``p_value``: Fisher's exact test (two-sided) of "the tag does not change the error rate",
    so that a gap between two rates is read against the noise of the counts behind them."""
    correct = np.asarray(correct, dtype=bool)
    if len(correct) != len(tags):
        raise ValueError("need one correctness flag per row of tags")
    rows = []
    for tag in tags.columns:
        has = tags[tag].to_numpy(dtype=bool)
        with_tag = float(np.mean(~correct[has])) if has.any() else float("nan")
        without = float(np.mean(~correct[~has])) if (~has).any() else float("nan")
        table = [[int((~correct[has]).sum()), int(correct[has].sum())],
                 [int((~correct[~has]).sum()), int(correct[~has].sum())]]
        rows.append({"tag": tag, "n_with": int(has.sum()), "error_rate_with": with_tag,
                     "error_rate_without": without, "ratio": with_tag / without
                     if without else float("nan"),
                     "p_value": float(stats.fisher_exact(table).pvalue)})
    return pd.DataFrame(rows).set_index("tag")


#: Gendered English words and their counterparts.  "her" is ambiguous (him/his); it maps to
#: "his", which reads correctly in the possessive use that dominates reviews.
GENDER_SWAPS: dict[str, str] = {
    "he": "she", "she": "he", "him": "her", "his": "her", "her": "his", "hers": "his",
    "himself": "herself", "herself": "himself", "man": "woman", "woman": "man",
    "men": "women", "women": "men", "boy": "girl", "girl": "boy", "boys": "girls",
    "girls": "boys", "actor": "actress", "actress": "actor", "actors": "actresses",
    "actresses": "actors", "father": "mother", "mother": "father", "son": "daughter",
    "daughter": "son", "brother": "sister", "sister": "brother", "husband": "wife",
    "wife": "husband", "king": "queen", "queen": "king", "mr": "mrs", "mrs": "mr",
    "guy": "gal", "gal": "guy",
}


def swap_words(text: str, mapping: Mapping[str, str]) -> str:
    """``text`` with every whole-word key of ``mapping`` replaced (case-insensitively).

    All replacements happen at once (``he``/``she`` swap, they do not both become ``he``),
    and the case of the first letter (or of the whole word, if upper-case) is kept.
    """
    if not mapping:
        raise ValueError("mapping must not be empty")
    lowered = {k.lower(): v for k, v in mapping.items()}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(lowered, key=len,
                                                                   reverse=True))) + r")\b",
                         re.IGNORECASE)

    def replace(match: re.Match) -> str:
        word = match.group(0)
        new = lowered[word.lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new[:1].upper() + new[1:] if word[0].isupper() else new

    return pattern.sub(replace, text)


def fill_template(templates: Sequence[str], names: Sequence[str]) -> list[str]:
    """Every template (with a ``{name}`` slot) filled with every name, templates outermost."""
    if any("{name}" not in t for t in templates):
        raise ValueError("every template needs a {name} slot")
    return [t.format(name=name) for t in templates for name in names]


def counterfactual_shift(model, tokenizer, originals: Sequence[str], swapped: Sequence[str],
                         max_length: int | None = None) -> pd.DataFrame:
    """Positive-class probability of each original and its counterfactual, the shift
    ``delta = p(swapped) - p(original)`` and whether the predicted label ``flipped``."""
    originals, swapped = check_texts(originals), check_texts(swapped)
    if len(originals) != len(swapped):
        raise ValueError("originals and swapped must be paired (equal length)")
    p = predict_proba(model, tokenizer, originals + swapped, max_length)[:, 1]
    p_original, p_swapped = p[: len(originals)], p[len(originals):]
    return pd.DataFrame({
        "original": originals, "swapped": swapped, "p_original": p_original,
        "p_swapped": p_swapped, "delta": p_swapped - p_original,
        "flipped": (p_original >= 0.5) != (p_swapped >= 0.5),
    })


def shift_summary(shifts: pd.DataFrame) -> dict:
    """Pairs, label flips, flip rate, mean and max ``|delta|`` of a counterfactual table."""
    if shifts.empty:
        raise ValueError("no counterfactual pairs to summarise")
    magnitude = shifts["delta"].abs()
    return {"pairs": len(shifts), "flips": int(shifts["flipped"].sum()),
            "flip_rate": float(shifts["flipped"].mean()), "mean_abs_delta": float(magnitude.mean()),
            "max_abs_delta": float(magnitude.max())}
