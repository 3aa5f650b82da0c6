"""Sentiment corpora: the stable stratified split, the tokeniser, the TFDS
builder round trip and rebuild (on a fixture CSV), the real CSV's counts, and
standard TFDS names on mock data."""

import collections
import glob
import json
import os
import subprocess
import sys

import pytest

from corpora import sentiment

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "movie_reviews_tiny.csv")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TinyMovieReviews(sentiment.MovieReviews):
  """The builder on tests/fixtures/movie_reviews_tiny.csv."""

  def source_path(self):
    return FIXTURE


def check_split(examples, splits):
  """Disjoint by text, complete, and stratified: each split's labels as in
  80/10/10 of each label's distinct texts (rounded)."""
  texts = {split: {e.text for e in part} for split, part in splits.items()}
  assert not texts["train"] & texts["validation"]
  assert not texts["train"] & texts["test"]
  assert not texts["validation"] & texts["test"]
  assert sorted(sum(splits.values(), [])) == sorted(examples)
  for split, part in splits.items():   # the CSV's order is kept
    rest = iter(examples)
    assert all(any(e == x for x in rest) for e in part), split
  for label in (0, 1):
    n = len({e.text for e in examples if e.label == label})
    distinct = {split: len({e.text for e in part if e.label == label})
                for split, part in splits.items()}
    assert distinct == {"train": round(0.8 * n), "validation": round(0.9 * n) - round(0.8 * n),
                        "test": n - round(0.9 * n)}


@pytest.mark.parametrize("config", ["imdb", "rt"])
def test_split_is_disjoint_complete_and_stratified(config):
  examples = sentiment.read_source(config, FIXTURE)
  assert len(examples) == {"imdb": 61, "rt": 40}[config]
  splits = sentiment.split_examples(examples)
  check_split(examples, splits)
  if config == "imdb":  # the duplicated review: both copies in one split
    twice = [t for t, c in collections.Counter(e.text for e in examples).items() if c == 2]
    assert len(twice) == 1
    counts = [sum(e.text == twice[0] for e in part) for part in splits.values()]
    assert sorted(counts) == [0, 0, 2]
  # A different order of the same examples gives the same split (by text).
  again = sentiment.split_examples(examples[::-1])
  assert {s: sorted(p) for s, p in again.items()} == {s: sorted(p) for s, p in splits.items()}


def test_split_is_the_same_in_another_process():
  code = ("import json, sys; from corpora import sentiment; "
          "s = sentiment.split_examples(sentiment.read_source('rt', sys.argv[1])); "
          "print(json.dumps({k: [e.text for e in v] for k, v in s.items()}))")
  env = dict(os.environ, PYTHONHASHSEED="12345")
  out = subprocess.run([sys.executable, "-c", code, FIXTURE], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True).stdout
  here = sentiment.split_examples(sentiment.read_source("rt", FIXTURE))
  assert json.loads(out) == {k: [e.text for e in v] for k, v in here.items()}
  # The rule is pinned: sha1 of the text.
  assert sentiment.text_hash("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d"


def test_a_text_with_both_labels_is_an_error():
  examples = [sentiment.Example("same", 0), sentiment.Example("same", 1)]
  with pytest.raises(ValueError, match="examples: the text 'same' has both labels"):
    sentiment.split_examples(examples)


def test_bad_source_rows_are_clear_errors(tmp_path):
  bad = tmp_path / "bad.csv"
  bad.write_text("text,label,source\nok,2,imdb\n")
  with pytest.raises(ValueError, match="label '2', expected 0 or 1"):
    sentiment.read_source("imdb", str(bad))
  bad.write_text("review,label\nok,1\n")
  with pytest.raises(ValueError, match="lacks the columns"):
    sentiment.read_source("imdb", str(bad))
  with pytest.raises(ValueError, match="config: expected one of"):
    sentiment.read_source("sst", str(bad))


def test_tokenize():
  text = 'I didn\'t LIKE it.<br /><br />A &amp; B, 7/10!<BR>end'
  assert sentiment.tokenize(text) == [
      "i", "didn't", "like", "it", ".", "a", "&", "b", ",", "7", "/", "10", "!", "end"]
  assert sentiment.tokenize(text, lowercase=False)[:3] == ["I", "didn't", "LIKE"]
  assert sentiment.clean_text("a<br />b") == "a b"


def test_real_csv_counts_labels_and_split_sizes():
  """The package's CSV: 25,000 IMDB reviews and 8,530 RT sentences, balanced."""
  sizes = {"imdb": (20_002, 2_500, 2_498), "rt": (6_824, 852, 854)}
  for config, total in (("imdb", 25_000), ("rt", 8_530)):
    examples = sentiment.read_source(config)
    assert len(examples) == total
    assert collections.Counter(e.label for e in examples) == {0: total // 2, 1: total // 2}
    splits = sentiment.split_examples(examples)
    assert tuple(len(splits[s]) for s in sentiment.SPLITS) == sizes[config]
    texts = [{e.text for e in part} for part in splits.values()]
    assert sum(len(t) for t in texts) == len(set().union(*texts))   # disjoint
    for part in splits.values():
      assert abs(sum(e.label for e in part) / len(part) - 0.5) < 0.002
  assert sentiment.read_source("imdb")[0].text.startswith("I rented I AM CURIOUS-YELLOW")


def test_builder_round_trip_reuse_and_rebuild(tmp_path):
  data_dir = str(tmp_path)
  for config in ("imdb", "rt"):
    expected = sentiment.split_examples(sentiment.read_source(config, FIXTURE))
    for split in sentiment.SPLITS:
      got = sentiment.read_split(config, split, data_dir=data_dir, builder_cls=TinyMovieReviews)
      assert got == expected[split] and all(isinstance(e.label, int) for e in got)
  version_dir = tmp_path / "tiny_movie_reviews" / "imdb" / "1.0.0"
  files = sorted(glob.glob(str(version_dir / "*.array_record*")))
  assert len(files) == 3
  before = {f: os.path.getmtime(f) for f in files}         # reused, not rebuilt
  sentiment.read_split("imdb", "train", data_dir=data_dir, builder_cls=TinyMovieReviews)
  assert {f: os.path.getmtime(f) for f in files} == before
  expected = sentiment.split_examples(sentiment.read_source("imdb", FIXTURE))["train"]
  victim = [f for f in files if "-train." in f][0]
  data = open(victim, "rb").read()
  open(victim, "wb").write(data[:len(data) // 2])           # a damaged file is rebuilt
  assert sentiment.read_split("imdb", "train", data_dir=data_dir,
                              builder_cls=TinyMovieReviews) == expected
  assert os.path.getsize(victim) == len(data)
  meta = json.loads((version_dir / "metadata.json").read_text())
  meta["split_rule"] = "an older rule"                      # so is another split rule
  (version_dir / "metadata.json").write_text(json.dumps(meta))
  assert sentiment.read_split("imdb", "train", data_dir=data_dir,
                              builder_cls=TinyMovieReviews) == expected
  assert json.loads((version_dir / "metadata.json").read_text())["split_rule"] == \
      sentiment.SPLIT_RULE
  with pytest.raises(ValueError, match="split: expected one of"):
    sentiment.read_split("imdb", "valid", data_dir=data_dir, builder_cls=TinyMovieReviews)
  with pytest.raises(ValueError, match="name: expected one of"):
    sentiment.read_split("imdb_review", "train", data_dir=data_dir)


def test_standard_tfds_names_on_mock_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=5):  # no download
    for name, split in (("imdb_reviews", "train"), ("imdb_reviews", "test"),
                        ("glue/sst2", "validation")):
      examples = sentiment.read_split(name, split, data_dir=str(tmp_path))
      assert len(examples) == 5
      assert all(isinstance(e, sentiment.Example) and isinstance(e.text, str)
                 and e.label in (0, 1) for e in examples)
    with pytest.raises(ValueError, match="split: glue/sst2's test labels are hidden"):
      sentiment.read_split("glue/sst2", "test", data_dir=str(tmp_path))


def test_text_stats_by_hand():
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  splits = {"train": [["a", "b", "a"], ["c"]], "validation": [["a", "c", "d", "e"]],
            "test": [["b"], ["a", "x"]]}
  stats = text_stats.describe(splits)
  # train counts: a 2, b 1, c 1. validation: d, e unknown at >= 1; c, d, e at >= 2.
  assert stats["validation"]["unk@1"] == pytest.approx(2 / 4)
  assert stats["validation"]["unk@2"] == pytest.approx(3 / 4)
  assert stats["test"]["unk@1"] == pytest.approx(1 / 3)
  assert stats["test"]["unk@2"] == pytest.approx(2 / 3)
  assert stats["train"]["vocab@1"] == 3 and stats["train"]["vocab@2"] == 1
  assert {k: stats["train"][k] for k in ("examples", "tokens", "max")} == {
      "examples": 2, "tokens": 4, "max": 3}
  assert text_stats.length_percentiles(list(range(1, 101))) == {
      "p50": 50, "p90": 90, "p99": 99, "max": 100}
  with pytest.raises(ValueError, match="train_split"):
    text_stats.describe({"valid": [["a"]]})
