"""Sentiment classification (N -> 1): IMDB reviews and Rotten Tomatoes sentences.

Text -> `corpora.sentiment.tokenize` words (lower-cased if config.lowercase)
-> ids of a vocabulary built from the training split only
(`input_pipeline.build_word_vocabulary`: '<pad>' 0, '<unk>' 1, words seen
>= config.min_count times, at most config.max_vocab_size ids) -> the first
or last config.max_len ids (config.truncation) -> a recurrent encoder
(config.cell, hidden_size, num_layers, bidirectional, dropout_rate on the
embeddings, between layers and before the head) pooled over time
(config.pooling: 'final' states, 'max' or 'mean' over the real steps) -> 2
logits. With config.word_vectors='ppmi_svd' the embedding starts from
PPMI + SVD vectors (`corpora.word_vectors`, dimension embed_size, window
config.word_vectors_window) counted from the unlabeled text of the train
splits of both packaged corpora (`VECTOR_CORPORA`; never a valid or test
split, and no labels); words that text lacks start at random.

Batches (B = batch, T = a bucket's padded length, from
config.bucket_boundaries; `input_pipeline.BucketedBatches`): 'inputs' [B, T]
ids, 'lengths' [B], 'labels' [B], 'weights' [B] (0 on the padding rows that
fill a bucket's last batch). Training batches are shuffled anew each epoch
from config.seed; each example is in exactly one batch per epoch.

Metrics on 'validation' (as 'valid') and 'test': accuracy, loss (mean
cross-entropy), examples, and with config.per_class_metrics
precision/CLASS, recall/CLASS, f1/CLASS for CLASS in LABEL_NAMES and
macro_f1 (`tasks.class_metrics`, from the confusion counts [2, 2] that the
loss adds to its sums, padding rows excluded). Run files in WORKDIR: vocabulary.txt (one token
per line, line k = id k) and data_stats.json (per split: examples, tokens,
the unknown-word rate of the tokens the model reads and the fraction of
examples truncated).
"""

from __future__ import annotations

import functools
import json
from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np
import optax

import corpora
import input_pipeline
from corpora import sentiment as sentiment_data
from corpora import store
from corpora import word_vectors as word_vectors_lib
from models import classifier
from models.checks import check_one_of
from tasks import base
from tasks import class_metrics

SPLITS = {"train": "train", "valid": "validation", "test": "test"}
LABEL_NAMES = ("negative", "positive")   # label 0, label 1
VOCABULARY_FILE = "vocabulary.txt"
DATA_STATS_FILE = "data_stats.json"
VECTOR_CORPORA = ("imdb", "rt")   # their train splits: the text word vectors count


class EncodedSplit(NamedTuple):
  """A split as ids: ids[i] [L_i] int32 (truncated), labels [N] int32, and
  what truncation and the vocabulary did to it."""
  ids: list[np.ndarray]
  labels: np.ndarray
  stats: dict[str, float]


def encode_split(token_lists: Sequence[Sequence[str]], labels: Sequence[int],
                 vocab: input_pipeline.Vocabulary, max_len: int,
                 truncation: str) -> EncodedSplit:
  """Tokens -> truncated ids, with stats: examples, tokens (before
  truncation), kept_tokens, unknown_rate (of the kept tokens) and
  truncated_rate (of the examples)."""
  ids, kept, unknown, truncated = [], 0, 0, 0
  for tokens in token_lists:
    row = input_pipeline.truncate(vocab.encode(tokens), max_len, truncation)
    if len(row) == 0:    # an empty text reads one unknown word
      row = np.asarray([input_pipeline.UNK_ID], np.int32)
    ids.append(row)
    kept += len(row)
    unknown += int(np.sum(row == input_pipeline.UNK_ID))
    truncated += len(tokens) > max_len
  count = len(token_lists)
  stats = {"examples": count, "tokens": sum(len(t) for t in token_lists),
           "kept_tokens": kept, "unknown_rate": unknown / max(kept, 1),
           "truncated_rate": truncated / max(count, 1)}
  return EncodedSplit(ids, np.asarray(labels, np.int32), stats)


def make_rows(split: EncodedSplit):
  """-> make_rows(indices [B] (-1: padding row), T) -> the batch dict."""
  def rows(indices: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    real = indices >= 0
    chosen = [split.ids[i] if i >= 0 else None for i in indices]
    return {"inputs": input_pipeline.pad_rows(chosen, steps),
            "lengths": np.asarray([len(r) if r is not None else 1 for r in chosen],
                                  np.int32),
            "labels": np.where(real, split.labels[np.maximum(indices, 0)], 0
                               ).astype(np.int32),
            "weights": real.astype(np.float32)}
  return rows


def loss(logits, batch):
  """logits [B, K] -> (cross-entropy averaged over the real rows, sums:
  nll, correct, count, and confusion [K, K] (gold x predicted counts))."""
  weights = batch["weights"]
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
  predicted = jnp.argmax(logits, -1)
  correct = (predicted == batch["labels"]).astype(weights.dtype)
  count = jnp.sum(weights)
  total = jnp.sum(nll * weights)
  return total / jnp.maximum(count, 1.0), {
      "nll": total, "correct": jnp.sum(correct * weights), "count": count,
      class_metrics.CONFUSION: class_metrics.confusion_counts(
          batch["labels"], predicted, weights, logits.shape[-1])}


def summarize(totals, per_class: bool = True):
  """Totals of the loss's sums -> the metrics; per_class adds
  precision/CLASS, recall/CLASS, f1/CLASS (CLASS in LABEL_NAMES) and
  macro_f1."""
  metrics = {"accuracy": base.ratio(totals, "correct", "count"),
             "loss": base.ratio(totals, "nll", "count"),
             "examples": int(totals["count"])}
  if per_class and class_metrics.CONFUSION in totals:
    metrics.update(class_metrics.metrics(totals[class_metrics.CONFUSION],
                                         LABEL_NAMES))
  return metrics


def tokenized_splits(config) -> dict[str, tuple[list[list[str]], list[int]]]:
  """{'train', 'valid', 'test'} -> (token lists, labels), shortened by
  config.max_train_size / max_eval_size when set."""
  out = {}
  for name, split in SPLITS.items():
    examples = sentiment_data.read_split(config.dataset, split,
                                         data_dir=config.data_dir or None)
    limit = config.max_train_size if name == "train" else config.max_eval_size
    if limit:
      examples = examples[:limit]
    out[name] = ([sentiment_data.tokenize(e.text, config.lowercase) for e in examples],
                 [e.label for e in examples])
  return out


def vector_corpus(config) -> list[list[str]]:
  """Token lists of the unlabeled text word vectors are counted from: the
  train split of each of VECTOR_CORPORA."""
  return [sentiment_data.tokenize(e.text, config.lowercase)
          for name in VECTOR_CORPORA
          for e in sentiment_data.read_split(name, "train",
                                             data_dir=config.data_dir or None)]


def word_vectors(config, vocab: input_pipeline.Vocabulary
                 ) -> word_vectors_lib.WordVectors | None:
  """config.word_vectors' vectors for the vocabulary (None for ''), cached
  under the data dir by settings, vocabulary and corpus."""
  if not config.get("word_vectors", ""):
    return None
  check_one_of("word_vectors", config.word_vectors, ("ppmi_svd",))
  corpus = vector_corpus(config)
  key = {"method": config.word_vectors, "dim": config.embed_size,
         "window": config.word_vectors_window,
         "vocabulary": store.sha256_lines(vocab.tokens),
         "corpus": store.sha256_lines(" ".join(tokens) for tokens in corpus)}
  return word_vectors_lib.cached(
      corpora.resolve_data_dir(config.data_dir or None), key,
      lambda: word_vectors_lib.ppmi_svd(corpus, vocab.tokens, config.embed_size,
                                        window=config.word_vectors_window))


def build_model(config, vocab_size: int,
                vectors: word_vectors_lib.WordVectors | None = None
                ) -> classifier.SequenceClassifier:
  extra = ({} if vectors is None
           else {"embedding_init": word_vectors_lib.embedding_init(vectors)})
  encoder = base.encoder(config, vocab_size=vocab_size, embed_size=config.embed_size,
                         bidirectional=config.bidirectional,
                         dropout_rate=config.dropout_rate, **extra)
  return classifier.SequenceClassifier(encoder, num_outputs=2, pooling=config.pooling)


def vector_stats(vectors: word_vectors_lib.WordVectors,
                 train_tokens: Sequence[Sequence[str]],
                 vocab: input_pipeline.Vocabulary) -> dict:
  """How much of the vocabulary and of the training tokens have a vector."""
  ids = vocab.encode([t for tokens in train_tokens for t in tokens])
  return {"ids_with_vector": int(vectors.found.sum()),
          "train_tokens_with_vector": float(np.mean(vectors.found[ids])) if len(ids)
          else 0.0,
          "sha256": vectors.fingerprint()}


def build(config) -> base.Task:
  check_one_of("dataset", config.dataset, tuple(sentiment_data.SOURCES))
  check_one_of("truncation", config.truncation, input_pipeline.TRUNCATIONS)
  check_one_of("pooling", config.pooling, classifier.POOLINGS)
  boundaries = input_pipeline.parse_bucket_boundaries(config.bucket_boundaries)
  tokens = tokenized_splits(config)
  vocab = input_pipeline.build_word_vocabulary(
      tokens["train"][0], min_count=config.min_count, max_size=config.max_vocab_size)
  data = {name: encode_split(token_lists, labels, vocab, config.max_len,
                             config.truncation)
          for name, (token_lists, labels) in tokens.items()}
  longest = max(len(r) for split in data.values() for r in split.ids)
  steps = input_pipeline.bucket_steps(boundaries, longest)

  def lengths(split):
    return [len(r) for r in split.ids]

  train_batches = input_pipeline.BucketedBatches(
      lengths(data["train"]), steps, make_rows(data["train"]), config.batch_size,
      config.seed)
  eval_splits = {name: input_pipeline.bucketed_eval_batches(
      lengths(data[name]), steps, make_rows(data[name]), config.eval_batch_size)
                 for name in ("valid", "test")}
  stats = {"vocabulary_size": len(vocab), "bucket_steps": list(steps),
           **{name: split.stats for name, split in data.items()}}
  vectors = word_vectors(config, vocab)
  if vectors is not None:
    stats["word_vectors"] = vector_stats(vectors, tokens["train"][0], vocab)
  return base.Task(
      model=build_model(config, len(vocab), vectors), loss=loss,
      summarize=functools.partial(summarize,
                                  per_class=config.get("per_class_metrics", True)),
      train_batches=train_batches, eval_splits=eval_splits,
      examples_in=lambda batch: int(np.sum(batch["weights"])),
      run_files={VOCABULARY_FILE: input_pipeline.vocabulary_file(vocab),
                 DATA_STATS_FILE: (json.dumps(stats, indent=1, sort_keys=True)
                                   + "\n").encode("utf-8")})
