"""Per-class precision, recall and F1 from a confusion-count matrix.

A task's loss adds `confusion_counts` to its sums (gold x predicted, padding
excluded), so evaluation over batches adds the matrices up exactly;
`summarize` then derives the per-class numbers with `metrics`, and
`experiments.confusion` plots the matrix and prints `markdown_table`.

N = predictions (any shape), K = classes.

Conventions: precision of class k is C[k, k] / (predictions of k), recall is
C[k, k] / (gold k), F1 their harmonic mean; each is 0 where its denominator
is 0 (a class never predicted, or absent from the split). macro_f1 is the mean
F1 over the classes that occur in the split's gold labels.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

CONFUSION = "confusion"   # the key of the [K, K] counts in a task's sums


def confusion_counts(gold: jax.Array, predicted: jax.Array, weights: jax.Array,
                     num_classes: int) -> jax.Array:
  """gold, predicted [N...] class ids, weights [N...] (0: padding) -> [K, K]
  float32 counts, row = gold class, column = predicted class."""
  gold_hot = jax.nn.one_hot(gold.reshape(-1), num_classes, dtype=jnp.float32)
  pred_hot = jax.nn.one_hot(predicted.reshape(-1), num_classes, dtype=jnp.float32)
  weights = weights.reshape(-1, 1).astype(jnp.float32)
  return (gold_hot * weights).T @ pred_hot


class PerClass(NamedTuple):
  """Per-class numbers, each [K]: precision, recall, f1, support (gold
  count) and predicted (count of predictions of the class)."""
  precision: np.ndarray
  recall: np.ndarray
  f1: np.ndarray
  support: np.ndarray
  predicted: np.ndarray


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  return np.where(denominator > 0, numerator / np.maximum(denominator, 1e-12), 0.0)


def check_confusion(confusion, names: Sequence[str] | None = None) -> np.ndarray:
  """The matrix as float64 [K, K]; ValueError naming it if it is not square or
  does not match `names`."""
  matrix = np.asarray(confusion, np.float64)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
    raise ValueError(f"confusion: expected a square [classes, classes] matrix, "
                     f"got shape {matrix.shape}")
  if names is not None and len(names) != matrix.shape[0]:
    raise ValueError(f"names: expected {matrix.shape[0]} class names for the "
                     f"confusion matrix, got {len(names)}")
  return matrix


def per_class(confusion) -> PerClass:
  """[K, K] gold x predicted counts -> PerClass."""
  matrix = check_confusion(confusion)
  hits = np.diag(matrix)
  support = matrix.sum(axis=1)
  predicted = matrix.sum(axis=0)
  precision = _safe_divide(hits, predicted)
  recall = _safe_divide(hits, support)
  f1 = _safe_divide(2 * precision * recall, precision + recall)
  return PerClass(precision, recall, f1, support, predicted)


def metrics(confusion, names: Sequence[str]) -> dict[str, float]:
  """-> {'precision/NAME', 'recall/NAME', 'f1/NAME' for every class, and
  'macro_f1'}: scalars, so metrics.jsonl stays flat."""
  check_confusion(confusion, names)
  numbers = per_class(confusion)
  out = {}
  for field in ("precision", "recall", "f1"):
    for name, value in zip(names, getattr(numbers, field)):
      out[f"{field}/{name}"] = float(value)
  present = numbers.support > 0
  out["macro_f1"] = float(np.mean(numbers.f1[present])) if present.any() else 0.0
  return out


def row_normalised(confusion) -> np.ndarray:
  """[K, K] -> each row divided by its gold count (a row of zeros stays 0): the
  fraction of class k's tokens predicted as each class."""
  matrix = check_confusion(confusion)
  return _safe_divide(matrix, matrix.sum(axis=1, keepdims=True))


def markdown_table(confusion, names: Sequence[str]) -> str:
  """A Markdown table: one row per class (class, gold count, predicted count,
  precision, recall, F1), then the micro (accuracy) and macro averages."""
  matrix = check_confusion(confusion, names)
  numbers = per_class(matrix)
  lines = ["| class | gold | predicted | precision | recall | F1 |",
           "|---|---|---|---|---|---|"]
  for k, name in enumerate(names):
    lines.append(f"| {name} | {int(numbers.support[k]):,} | "
                 f"{int(numbers.predicted[k]):,} | {numbers.precision[k]:.4f} | "
                 f"{numbers.recall[k]:.4f} | {numbers.f1[k]:.4f} |")
  total = matrix.sum()
  accuracy = float(np.trace(matrix) / total) if total > 0 else 0.0
  present = numbers.support > 0
  macro = [float(np.mean(v[present])) if present.any() else 0.0
           for v in (numbers.precision, numbers.recall, numbers.f1)]
  lines.append(f"| micro (accuracy) | {int(total):,} | {int(total):,} | "
               f"{accuracy:.4f} | {accuracy:.4f} | {accuracy:.4f} |")
  lines.append(f"| macro ({int(present.sum())} classes in gold) | | | "
               f"{macro[0]:.4f} | {macro[1]:.4f} | {macro[2]:.4f} |")
  return "\n".join(lines)
