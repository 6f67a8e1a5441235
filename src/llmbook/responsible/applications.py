"""Three applications of a sentiment model and sentence embeddings (chapter 16).

* **Support-desk triage with abstention**: route a message automatically only when the
  classifier's confidence reaches a threshold, otherwise hand it to a person.
  :func:`precision_coverage` traces the trade-off, :func:`choose_threshold` picks the
  threshold on validation data for a target precision.
* **A sentiment index with a drop alert**: the mean sentiment of each day's texts, its rolling
  mean, and an alert when the rolling mean falls well below its level in a calibration period
  (:func:`drop_alert`).  :func:`synthetic_stream` assigns dates to undated texts, with a planted
  change in the mix of sentiments, so the alert can be checked against a known answer.
* **Recommendation by embeddings**: nearest neighbours of a text, or of a user's interest
  profile (the mean embedding of texts they liked), by cosine similarity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

#: Twitter handles of the US airlines in the CrowdFlower airline corpus (inside ``load_tweets``).
AIRLINE_PATTERN = r"@(?:united|virginamerica|jetblue|usairways|americanair|southwestair|delta)\b"

#: Tweets about Apple, the company (the CrowdFlower Apple corpus inside ``load_tweets``).
APPLE_PATTERN = r"\bapple\b|[$#]aapl\b"


def tweets_about(tweets: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Rows of ``tweets`` whose text matches the regular expression ``pattern`` (any case)."""
    keep = tweets["text"].str.contains(pattern, flags=re.IGNORECASE, regex=True)
    return tweets[keep].reset_index(drop=True)


def _check_pair(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    if confidence.ndim != 1 or confidence.shape != correct.shape or len(confidence) == 0:
        raise ValueError("confidence and correct must be non-empty 1-D arrays of equal length")
    return confidence, correct


def precision_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> pd.DataFrame:
    """For every candidate threshold (each distinct confidence), the share of messages handled
    automatically (``coverage``: confidence >= threshold) and the share of those handled
    correctly (``precision``).  Rows sorted by increasing threshold, so coverage decreases."""
    confidence, correct = _check_pair(confidence, correct)
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence, hits = confidence[order], np.cumsum(correct[order])
    thresholds = np.unique(confidence)
    # messages with confidence >= t are a prefix of the descending order
    kept = len(confidence) - np.searchsorted(sorted_confidence[::-1], thresholds, side="left")
    return pd.DataFrame({"threshold": thresholds, "coverage": kept / len(confidence),
                         "precision": hits[kept - 1] / kept})


def choose_threshold(confidence: Sequence[float], correct: Sequence[bool],
                     target_precision: float) -> float:
    """The lowest threshold (largest coverage) whose precision reaches ``target_precision``.

    Call it on *validation* data; raises ``ValueError`` if no threshold reaches the target.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    curve = precision_coverage(confidence, correct)
    reached = curve[curve["precision"] >= target_precision]
    if reached.empty:
        raise ValueError(f"no threshold reaches precision {target_precision}")
    return float(reached["threshold"].iloc[0])


def abstention_report(confidence: Sequence[float], correct: Sequence[bool],
                      threshold: float) -> dict:
    """Coverage and precision at ``threshold``, and the counts behind them."""
    confidence, correct = _check_pair(confidence, correct)
    handled = confidence >= threshold
    return {"threshold": float(threshold), "n": len(confidence), "handled": int(handled.sum()),
            "coverage": float(handled.mean()),
            "precision": float(correct[handled].mean()) if handled.any() else float("nan"),
            "accuracy_without_abstaining": float(correct.mean())}


#: Where a message goes, by predicted class (0 negative, 1 positive), when it is not abstained.
ROUTES = ("escalate to an agent", "auto-reply: thank the customer")

ABSTAIN = "human review"


def route(probabilities: np.ndarray, threshold: float,
          routes: Sequence[str] = ROUTES) -> np.ndarray:
    """The route of each message: its class's route if confident enough, else :data:`ABSTAIN`."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(routes):
        raise ValueError(f"probabilities must have shape (n, {len(routes)})")
    chosen = np.asarray(routes, dtype=object)[probabilities.argmax(axis=1)]
    return np.where(probabilities.max(axis=1) >= threshold, chosen, ABSTAIN)


def synthetic_stream(labels: Sequence[str], days: int, per_day: int, change_day: int,
                     shares_before: Mapping[str, float], shares_after: Mapping[str, float],
                     seed: int = 0) -> pd.DataFrame:
    """Assign undated texts to ``days`` synthetic days, ``per_day`` texts a day.

    Each day's texts are drawn without replacement from the pools of each label in
    ``labels``; from ``change_day`` on the label mix changes from ``shares_before`` to
    ``shares_after``.  Returns ``position`` (index into ``labels``) and ``day`` per text.
    """
    labels = np.asarray(labels)
    if not 0 < change_day < days or per_day < 1:
        raise ValueError("need 0 < change_day < days and per_day >= 1")
    rng = np.random.default_rng(seed)
    pools = {label: list(rng.permutation(np.flatnonzero(labels == label)))
             for label in sorted(set(shares_before) | set(shares_after))}
    rows = []
    for day in range(days):
        shares = shares_before if day < change_day else shares_after
        names = list(shares)
        weights = np.asarray([shares[n] for n in names], dtype=float)
        for label in rng.choice(names, size=per_day, p=weights / weights.sum()):
            if not pools[label]:
                raise ValueError(f"not enough texts labelled {label!r} for this stream")
            rows.append({"position": int(pools[label].pop()), "day": day})
    return pd.DataFrame(rows)


def drop_alert(daily: pd.Series, window: int, calibration_days: int, k: float = 3.0
               ) -> pd.DataFrame:
    """Rolling mean of a daily index and an alert when it drops below a control level.

    The level is ``mean - k * std / sqrt(window)`` of the daily index over its first
    ``calibration_days`` days: ``k`` standard errors of a ``window``-day mean below normal.
    Columns: ``index``, ``rolling``, ``level``, ``alert``.
    """
    if window < 1 or calibration_days < max(2, window):
        raise ValueError("need window >= 1 and calibration_days >= max(2, window)")
    if len(daily) <= calibration_days:
        raise ValueError("the series must be longer than the calibration period")
    calibration = daily.iloc[:calibration_days]
    level = calibration.mean() - k * calibration.std(ddof=1) / np.sqrt(window)
    rolling = daily.rolling(window, min_periods=window).mean()
    return pd.DataFrame({"index": daily, "rolling": rolling, "level": level,
                         "alert": rolling < level})


def nearest_neighbours(embeddings: np.ndarray, queries: np.ndarray, k: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` rows of ``embeddings`` nearest each query.

    Rows are L2-normalised here, so any embeddings work; a query that is itself a row of
    ``embeddings`` finds itself first (similarity 1).
    """
    embeddings, queries = np.atleast_2d(embeddings), np.atleast_2d(queries)
    if embeddings.shape[1] != queries.shape[1] or not 1 <= k <= len(embeddings):
        raise ValueError("queries must match the embedding width and 1 <= k <= len(embeddings)")

    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)

    similarity = unit(queries) @ unit(embeddings).T
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(similarity, top, axis=1)


def interest_profile(embeddings: np.ndarray, liked: Sequence[int]) -> np.ndarray:
    """A user's interest vector: the normalised mean embedding of the texts they liked."""
    if len(liked) == 0:
        raise ValueError("need at least one liked text")
    mean = np.asarray(embeddings)[list(liked)].mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def tag_agreement(neighbours: np.ndarray, tags: Sequence[str]) -> tuple[float, float]:
    """Share of neighbours carrying their query's tag, and the chance level of that share.

    ``neighbours[i]`` are the neighbour indices of item ``i`` (itself excluded); chance is
    the agreement of neighbours drawn at random: the sum of squared tag shares.
    """
    tags = np.asarray(tags)
    neighbours = np.asarray(neighbours)
    if len(neighbours) != len(tags):
        raise ValueError("need one row of neighbours per tagged item")
    agreement = float((tags[neighbours] == tags[:, None]).mean())
    shares = pd.Series(tags).value_counts(normalize=True).to_numpy()
    return agreement, float((shares ** 2).sum())


def project_2d(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D PCA projection of ``embeddings`` for plotting, shape ``(n, 2)``."""
    return PCA(n_components=2, random_state=seed).fit_transform(np.asarray(embeddings))


#: Genre words used as stand-ins for a reader's interests (chapter 16): no user data ships
#: with the book, so "liked a horror film" is approximated by "wrote about a horror film".
GENRES: dict[str, tuple[str, ...]] = {
    "horror": ("horror",), "comedy": ("comedy", "comedies"),
    "documentary": ("documentary", "documentaries"), "animation": ("animation", "animated"),
    "war": ("war",), "western": ("western", "westerns"),
}


def keyword_tags(texts: Sequence[str], groups: Mapping[str, Sequence[str]] = GENRES
                 ) -> list[str | None]:
    """The group whose whole-word keywords a text mentions; ``None`` for none or several."""
    patterns = {group: re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b",
                                  re.IGNORECASE) for group, words in groups.items()}
    tags = []
    for text in texts:
        found = [group for group, pattern in patterns.items() if pattern.search(text)]
        tags.append(found[0] if len(found) == 1 else None)
    return tags
