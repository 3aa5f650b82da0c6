"""The temporal order problem (Hochreiter & Schmidhuber 1997, Exp. 6a and 6b).

Alphabet {a, b, c, d, X, Y, B, E}, one-hot inputs. A sequence of length
100..110 (uniform) starts with B and ends with E; every other symbol is a
random distractor from {a, b, c, d}, except at the relevant positions, which
hold X or Y:

  6a: two positions t1 in [10, 20], t2 in [50, 60]            -> 4 classes
  6b: three positions t1 in [10, 20], t2 in [33, 43], t3 in [66, 76]
                                                                -> 8 classes

The class is the order of X/Y at those positions (XX, XY, YX, YY for 6a),
read off at the end of the sequence. Positions are 1-based in the paper;
here they index from the B at position 0. Paper results: 6a solved after
31,390 sequences (1 of 2560 test sequences wrong); 6b after 571,100.

"Solved" here: at most `solved_max_error` (default 1/256) of the validation
sequences misclassified.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

import input_pipeline
from models import classifier
from models.checks import check_one_of
from tasks import base

SYMBOLS = "abcdXYBE"
_INDEX = {s: i for i, s in enumerate(SYMBOLS)}
MIN_LEN, MAX_LEN = 100, 110
POSITIONS = {
    "6a": ((10, 20), (50, 60)),
    "6b": ((10, 20), (33, 43), (66, 76)),
}


def make_batch(rng: np.random.Generator, batch_size: int, *, variant: str):
  """-> {'inputs': [B, 110, 8] one-hot, 'lengths': [B], 'labels': [B]}."""
  spans = POSITIONS[variant]
  lengths = rng.integers(MIN_LEN, MAX_LEN + 1, batch_size).astype(np.int32)
  symbols = rng.integers(0, 4, (batch_size, MAX_LEN))       # distractors a-d
  symbols[:, 0] = _INDEX["B"]
  rows = np.arange(batch_size)
  symbols[rows, lengths - 1] = _INDEX["E"]
  labels = np.zeros(batch_size, np.int32)
  for low, high in spans:
    position = rng.integers(low, high + 1, batch_size)
    is_y = rng.integers(0, 2, batch_size)
    symbols[rows, position] = np.where(is_y, _INDEX["Y"], _INDEX["X"])
    labels = labels * 2 + is_y
  inputs = np.eye(len(SYMBOLS), dtype=np.float32)[symbols]
  inputs *= (np.arange(MAX_LEN)[None, :] < lengths[:, None])[..., None]
  return {"inputs": inputs, "lengths": lengths, "labels": labels}


def loss(logits, batch):
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
  wrong = jnp.argmax(logits, -1) != batch["labels"]
  sums = {"nll": jnp.sum(losses), "wrong": jnp.sum(wrong),
          "count": jnp.asarray(losses.shape[0], jnp.float32)}
  return jnp.mean(losses), sums


def summarize(totals):
  return {"loss": base.ratio(totals, "nll", "count"),
          "error_rate": base.ratio(totals, "wrong", "count"),
          "wrong": int(totals["wrong"])}


def build(config) -> base.Task:
  check_one_of("variant", config.variant, sorted(POSITIONS))
  maker = functools.partial(make_batch, variant=config.variant)
  max_error = config.solved_max_error
  train_batches, eval_splits = input_pipeline.generated_data(maker, config)
  return base.Task(
      model=classifier.SequenceClassifier(
          base.encoder(config), num_outputs=2 ** len(POSITIONS[config.variant])),
      loss=loss, summarize=summarize,
      solved=lambda metrics: metrics["error_rate"] <= max_error,
      train_batches=train_batches, eval_splits=eval_splits)
