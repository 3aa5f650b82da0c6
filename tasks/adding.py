"""The adding problem (Hochreiter & Schmidhuber 1997, Exp. 4), Le et al. 2015 form.

Each of T steps carries a pair (value ~ U[0, 1], marker in {0, 1}); exactly
two markers are set, one uniformly in each half of the sequence. The target is
the sum of the two marked values; the loss is mean squared error. Predicting
the constant 1.0 scores MSE = Var(U1 + U2) = 1/6 ~ 0.167.

"Solved" (REPRODUCE.md): MSE < 0.01 and, the paper's own criterion, fewer
than 1 in 100 sequences with absolute error > 0.04.

The original Exp. 4 used values in [-1, 1] and a different marker scheme; we
use the variant that later papers (Le et al. 2015 onward) report on.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

import input_pipeline
from models import classifier
from tasks import base

SOLVED_MSE = 0.01
SOLVED_ABS_ERROR = 0.04
SOLVED_MAX_FRACTION = 0.01


def make_batch(rng: np.random.Generator, batch_size: int, *, seq_len: int):
  """-> {'inputs': [B, T, 2] float32, 'lengths': [B], 'targets': [B]}."""
  if seq_len < 2:
    raise ValueError(f"seq_len: the adding problem needs at least 2 steps, got {seq_len}")
  values = rng.uniform(0.0, 1.0, (batch_size, seq_len)).astype(np.float32)
  half = seq_len // 2
  first = rng.integers(0, half, batch_size)
  second = rng.integers(half, seq_len, batch_size)
  rows = np.arange(batch_size)
  markers = np.zeros((batch_size, seq_len), np.float32)
  markers[rows, first] = 1.0
  markers[rows, second] = 1.0
  return {
      "inputs": np.stack([values, markers], axis=-1),
      "lengths": np.full((batch_size,), seq_len, np.int32),
      "targets": values[rows, first] + values[rows, second],
  }


def loss(outputs, batch):
  errors = outputs[:, 0] - batch["targets"]
  sums = {"sq_error": jnp.sum(errors ** 2),
          "big_errors": jnp.sum(jnp.abs(errors) > SOLVED_ABS_ERROR),
          "count": jnp.asarray(errors.shape[0], jnp.float32)}
  return jnp.mean(errors ** 2), sums


def summarize(totals):
  return {"mse": base.ratio(totals, "sq_error", "count"),
          "frac_abs_error_gt_0.04": base.ratio(totals, "big_errors", "count")}


def solved(metrics) -> bool:
  return (metrics["mse"] < SOLVED_MSE and
          metrics["frac_abs_error_gt_0.04"] < SOLVED_MAX_FRACTION)


def build(config) -> base.Task:
  maker = functools.partial(make_batch, seq_len=config.seq_len)
  train_batches, eval_splits = input_pipeline.generated_data(maker, config)
  return base.Task(
      model=classifier.SequenceClassifier(base.encoder(config), num_outputs=1),
      loss=loss, summarize=summarize, solved=solved,
      train_batches=train_batches, eval_splits=eval_splits)
