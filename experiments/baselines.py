"""Non-neural baselines for the text tasks, on exactly the splits the neural runs use.

  python -m experiments.baselines --task=sentiment --dataset=imdb|rt [--out=FILE.json]
  python -m experiments.baselines --task=tagging --dataset=ud_he|ud_tr [--out=FILE.json]

sentiment: TF-IDF features of `corpora.sentiment.tokenize` (lower-cased, as
  the sentiment configs read it) unigrams and bigrams seen in at least
  MIN_DF training texts, sublinear term frequencies, into an L2-regularised
  logistic regression (scikit-learn's liblinear) fitted on 'train'; C is the
  value of C_GRID with the best 'validation' accuracy (ties: the smaller),
  and that model is scored on 'validation' and 'test'
  (`corpora.sentiment.read_split`). scikit-learn is a benchmarking
  dependency only (requirements-bench.txt), imported when this runs.
tagging: each word gets the tag it has most often in 'train' (ties: the
  alphabetically first tag); a word never seen in training gets the most
  frequent tag overall ('most frequent tag') or, with the suffix fallback,
  the most frequent tag of the training words sharing its longest suffix of
  at most MAX_SUFFIX characters (each distinct training (word, tag) pair
  counts once per suffix; no shared suffix: the most frequent tag overall).
  Token accuracy overall and on the tokens whose word never occurs in
  'train' (words compared as they are, as the tagging configs read them),
  on `corpora.ud.read_tagging`'s 'validation' and 'test'.

Prints a Markdown table (header and rows) and, with --out, writes the
numbers, the settings and the wall time as JSON.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from absl import flags

from corpora import sentiment as sentiment_data
from corpora import ud
from experiments import cli
from experiments import line_input
from experiments.configs import tagging as tagging_config

TASKS = ("sentiment", "tagging")
SENTIMENT_DATASETS = ("imdb", "rt")
EVAL_SPLITS = {"valid": "validation", "test": "test"}
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
NGRAM_RANGE = (1, 2)
MIN_DF = 2
MAX_SUFFIX = 4
INSTALL_HINT = "pip install -r requirements-bench.txt"


class MissingDependencyError(ImportError):
  """A benchmarking dependency (not in requirements.txt) is not installed."""


# ----------------------------------------------------------------------------
# Tagging: the most frequent tag per word.

def most_frequent(counts: Mapping[str, int]) -> str:
  """The key with the highest count; ties: the alphabetically first."""
  return min(counts, key=lambda key: (-counts[key], key))


class MostFrequentTagger(NamedTuple):
  """by_word: word -> its most frequent training tag; by_suffix: suffix (1 to
  MAX_SUFFIX characters) -> the most frequent tag of the training words
  ending in it; default: the most frequent tag overall."""
  by_word: dict[str, str]
  by_suffix: dict[str, str]
  default: str
  max_suffix: int = MAX_SUFFIX


def fit_tagger(sentences: Iterable[ud.TaggedSentence],
               max_suffix: int = MAX_SUFFIX) -> MostFrequentTagger:
  """The baseline's tables from training sentences."""
  per_word: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  overall: collections.Counter = collections.Counter()
  for sentence in sentences:
    for word, tag in zip(sentence.words, sentence.upos):
      per_word[word][tag] += 1
      overall[tag] += 1
  if not overall:
    raise ValueError("sentences: no tagged words to learn from")
  per_suffix: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for word, tags in per_word.items():
    for n in range(1, min(max_suffix, len(word)) + 1):
      per_suffix[word[-n:]].update(tags.keys())   # each (word, tag) pair once
  return MostFrequentTagger(
      by_word={word: most_frequent(tags) for word, tags in per_word.items()},
      by_suffix={suffix: most_frequent(tags) for suffix, tags in per_suffix.items()},
      default=most_frequent(overall), max_suffix=max_suffix)


def tag_word(tagger: MostFrequentTagger, word: str, suffixes: bool = False) -> str:
  """The baseline's tag for one word."""
  if word in tagger.by_word:
    return tagger.by_word[word]
  if suffixes:
    for n in range(min(tagger.max_suffix, len(word)), 0, -1):
      if word[-n:] in tagger.by_suffix:
        return tagger.by_suffix[word[-n:]]
  return tagger.default


class TaggingScore(NamedTuple):
  """Token accuracy overall and on tokens whose word is not in training."""
  accuracy: float
  accuracy_unseen: float
  unseen_rate: float
  tokens: int
  unseen: int


def score_tagging(tagger: MostFrequentTagger, sentences: Sequence[ud.TaggedSentence],
                  suffixes: bool = False) -> TaggingScore:
  tokens = unseen = correct = correct_unseen = 0
  for sentence in sentences:
    for word, gold in zip(sentence.words, sentence.upos):
      hit = tag_word(tagger, word, suffixes) == gold
      new = word not in tagger.by_word
      tokens += 1
      correct += hit
      unseen += new
      correct_unseen += hit and new
  return TaggingScore(correct / max(tokens, 1), correct_unseen / max(unseen, 1),
                      unseen / max(tokens, 1), tokens, unseen)


TAGGING_BASELINES = {"most_frequent_tag": False, "most_frequent_tag_suffix": True}


def tagging_baseline(splits: Mapping[str, Sequence[ud.TaggedSentence]]) -> dict[str, Any]:
  """{'train', 'valid', 'test'} sentences -> {baseline: {split: TaggingScore
  as a dict}} for both variants, and the settings."""
  tagger = fit_tagger(splits["train"])
  results = {name: {split: score_tagging(tagger, splits[split], suffixes)._asdict()
                    for split in EVAL_SPLITS}
             for name, suffixes in TAGGING_BASELINES.items()}
  return {"baselines": results,
          "settings": {"max_suffix": tagger.max_suffix, "default_tag": tagger.default,
                       "train_words": len(tagger.by_word),
                       "train_tokens": sum(len(s.words) for s in splits["train"])}}


def read_tagging_splits(dataset: str, data_dir: str | None = None):
  treebank = tagging_config.DATASETS[dataset]
  return {"train": ud.read_tagging(treebank, "train", data_dir=data_dir),
          **{name: ud.read_tagging(treebank, split, data_dir=data_dir)
             for name, split in EVAL_SPLITS.items()}}


# ----------------------------------------------------------------------------
# Sentiment: TF-IDF + logistic regression.

def _sklearn():
  """(TfidfVectorizer, LogisticRegression, version); MissingDependencyError
  with the install command when scikit-learn is not installed."""
  try:
    # pylint: disable=g-import-not-at-top
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
  except ImportError as e:
    raise MissingDependencyError(
        f"the TF-IDF baseline needs scikit-learn, a benchmarking dependency "
        f"not in requirements.txt: {INSTALL_HINT} ({e})") from e
  return TfidfVectorizer, LogisticRegression, sklearn.__version__


def _accuracy(model, features, labels: Sequence[int]) -> float:
  predicted = model.predict(features)
  return float(sum(int(p) == y for p, y in zip(predicted, labels)) / max(len(labels), 1))


def sentiment_baseline(splits: Mapping[str, Sequence[sentiment_data.Example]],
                       c_grid: Sequence[float] = C_GRID,
                       min_df: int = MIN_DF) -> dict[str, Any]:
  """{'train', 'valid', 'test'} examples -> the tuned model's accuracies,
  the validation accuracy of every C and the settings."""
  tfidf, logistic_regression, version = _sklearn()
  vectorizer = tfidf(tokenizer=sentiment_data.tokenize, token_pattern=None,
                     lowercase=False, ngram_range=NGRAM_RANGE, min_df=min_df,
                     sublinear_tf=True)
  features = {"train": vectorizer.fit_transform([e.text for e in splits["train"]])}
  features.update({split: vectorizer.transform([e.text for e in splits[split]])
                   for split in EVAL_SPLITS})
  labels = {split: [e.label for e in part] for split, part in splits.items()}
  best, by_c = None, {}
  for c in c_grid:
    model = logistic_regression(C=c, solver="liblinear", max_iter=1000,
                                random_state=0)
    model.fit(features["train"], labels["train"])
    by_c[f"{c:g}"] = _accuracy(model, features["valid"], labels["valid"])
    if best is None or by_c[f"{c:g}"] > by_c[f"{best[0]:g}"]:
      best = (c, model)
  c, model = best
  scores = {split: {"accuracy": _accuracy(model, features[split], labels[split]),
                    "examples": len(labels[split])} for split in EVAL_SPLITS}
  return {"baselines": {"tfidf_logistic_regression": scores},
          "settings": {"C": c, "valid_accuracy_by_C": by_c,
                       "ngram_range": list(NGRAM_RANGE), "min_df": min_df,
                       "sublinear_tf": True, "features": len(vectorizer.vocabulary_),
                       "tokenizer": "corpora.sentiment.tokenize (lower-cased)",
                       "solver": "liblinear", "scikit-learn": version}}


def read_sentiment_splits(dataset: str, data_dir: str | None = None):
  return {"train": sentiment_data.read_split(dataset, "train", data_dir=data_dir),
          **{name: sentiment_data.read_split(dataset, split, data_dir=data_dir)
             for name, split in EVAL_SPLITS.items()}}


# ----------------------------------------------------------------------------
# The table and the command.

def _percent(value: float) -> str:
  return f"{100 * value:.2f}"


def markdown(result: Mapping[str, Any]) -> list[str]:
  """The result as a Markdown table: a header and one row per baseline."""
  dataset, seconds = result["dataset"], result["wall_seconds"]
  if result["task"] == "sentiment":
    settings = result["settings"]
    lines = ["| dataset | baseline | C | valid accuracy | test accuracy | wall |",
             "|---|---|---|---|---|---|"]
    for name, scores in result["baselines"].items():
      lines.append(f"| {dataset} | {name} | {settings['C']:g} | "
                   f"{_percent(scores['valid']['accuracy'])} | "
                   f"{_percent(scores['test']['accuracy'])} | {seconds:.0f} s |")
    return lines
  lines = ["| treebank | baseline | valid accuracy | valid unseen | test accuracy "
           "| test unseen | wall |", "|---|---|---|---|---|---|---|"]
  for name, scores in result["baselines"].items():
    lines.append(f"| {dataset} | {name} | {_percent(scores['valid']['accuracy'])} | "
                 f"{_percent(scores['valid']['accuracy_unseen'])} | "
                 f"{_percent(scores['test']['accuracy'])} | "
                 f"{_percent(scores['test']['accuracy_unseen'])} | {seconds:.0f} s |")
  return lines


def check_dataset(task: str, dataset: str) -> None:
  choices = SENTIMENT_DATASETS if task == "sentiment" else tuple(tagging_config.DATASETS)
  if dataset not in choices:
    raise cli.UsageError(f"--dataset: for --task={task} expected one of "
                         f"{', '.join(choices)}, got {dataset!r}")


def run(task: str, dataset: str, data_dir: str | None = None) -> dict[str, Any]:
  """The baseline of a task on a dataset, with its wall time (data reading
  included)."""
  check_dataset(task, dataset)
  start = time.perf_counter()
  if task == "sentiment":
    _sklearn()   # fail before reading the data
    result = sentiment_baseline(read_sentiment_splits(dataset, data_dir))
  else:
    result = tagging_baseline(read_tagging_splits(dataset, data_dir))
  return {"task": task, "dataset": dataset, **result,
          "wall_seconds": round(time.perf_counter() - start, 1)}


def _run(f: flags.FlagValues) -> None:
  try:
    result = run(f.task, f.dataset, f.data_dir or None)
  except MissingDependencyError as e:
    print(f"error: {cli.one_line(str(e))}", file=sys.stderr, flush=True)
    sys.exit(cli.EXIT_RUNTIME)
  print("\n".join(markdown(result)), flush=True)
  if f.out:
    with open(f.out, "w") as out:
      json.dump(result, out, indent=1, sort_keys=True)
      out.write("\n")


def main():
  flags.DEFINE_enum("task", None, TASKS, "Which baseline.", required=True)
  flags.DEFINE_string("dataset", None, "sentiment: imdb | rt; tagging: "
                      "ud_he | ud_tr.", required=True)
  flags.DEFINE_string("out", None, "Also write the result as JSON here.")
  flags.DEFINE_string("data_dir", None, "Corpora directory (default: "
                      "$RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds).")
  line_input.run_tool(_run)


if __name__ == "__main__":
  main()
