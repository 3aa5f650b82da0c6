"""Polyphonic music modelling (Chung et al. 2014) on Bach chorales: predict
each piano-roll frame from the frames before it.

Data: `corpora.music.read_split` (music21's chorales as [T, 88] 0/1 rolls,
config.time_step 'quarter' | 'eighth', config.transpose 'none' | 'c'). A
piece of T frames is one sequence: inputs are a blank frame followed by its
first T - 1 frames, targets are its T frames, so every frame is predicted,
the first from silence.

Batches (B pieces, F = a bucket's padded length from config.bucket_boundaries):
'inputs' [B, F, 88] float32, 'targets' [B, F, 88] float32, 'lengths' [B],
'weights' [B] (0 on the padding rows, of length 1, that fill a bucket's
last batch). Each training piece
is in exactly one batch per epoch, reshuffled each epoch from config.seed.

Loss: the negative log-likelihood of the target frame under independent
sigmoid outputs, summed over the 88 pitches, averaged over real frames.
Metrics on 'valid' and 'test': nll (nats per time step, the papers' figure),
nll_per_note (the same total over the sounding notes), frame accuracy
TP / (TP + FP + FN) at p > 0.5 (Bay et al. 2009, as in Boulanger-Lewandowski
et al. 2012), frames and pieces.
"""

from __future__ import annotations

import json
from typing import Sequence

import jax.numpy as jnp
import numpy as np
import optax

import input_pipeline
from corpora import music as music_data
from models import piano_roll
from tasks import base

SPLITS = ("train", "valid", "test")
DATA_STATS_FILE = "data_stats.json"


def shifted(roll: np.ndarray) -> np.ndarray:
  """[T, P] -> [T, P]: a blank frame, then frames 0 .. T - 2."""
  return np.concatenate([np.zeros_like(roll[:1]), roll[:-1]], axis=0)


def make_rows(rolls: Sequence[np.ndarray]):
  """-> rows(indices [B] (-1: padding row), F) -> the batch dict."""
  def rows(indices: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    inputs = np.zeros((len(indices), steps, music_data.NUM_PITCHES), np.float32)
    targets = np.zeros_like(inputs)
    lengths = np.ones(len(indices), np.int32)
    for b, i in enumerate(indices):
      if i >= 0:
        roll = rolls[i]
        inputs[b, :len(roll)] = shifted(roll)
        targets[b, :len(roll)] = roll
        lengths[b] = len(roll)
    return {"inputs": inputs, "targets": targets, "lengths": lengths,
            "weights": (indices >= 0).astype(np.float32)}
  return rows


def loss(logits, batch):
  """logits [B, F, P] -> (mean NLL per real frame, sums)."""
  targets = batch["targets"]
  mask = (base.step_mask(batch["lengths"], targets.shape[1])
          & (batch["weights"][:, None] > 0))                                # [B, F]
  per_frame = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1)
  nll_sum = jnp.sum(jnp.where(mask, per_frame, 0.0))
  frames = jnp.sum(mask)
  on = mask[..., None]
  predicted = logits > 0.0
  truth = targets > 0.5
  sums = {"nll_sum": nll_sum, "frames": frames.astype(jnp.float32),
          "notes": jnp.sum(jnp.where(on, targets, 0.0)),
          "pieces": jnp.sum(batch["weights"]),
          "true_positives": jnp.sum(on & predicted & truth).astype(jnp.float32),
          "false_positives": jnp.sum(on & predicted & ~truth).astype(jnp.float32),
          "false_negatives": jnp.sum(on & ~predicted & truth).astype(jnp.float32)}
  return nll_sum / jnp.maximum(frames, 1), sums


def summarize(totals) -> dict[str, float]:
  hits = float(totals["true_positives"])
  misses = float(totals["false_positives"]) + float(totals["false_negatives"])
  nll = base.ratio(totals, "nll_sum", "frames")
  return {"nll": nll, "loss": nll,
          "nll_per_note": base.ratio(totals, "nll_sum", "notes"),
          "accuracy": hits / max(hits + misses, 1.0),
          "frames": float(totals["frames"]), "pieces": float(totals["pieces"])}


def build_model(config) -> piano_roll.NextFrameModel:
  return piano_roll.NextFrameModel(
      num_pitches=music_data.NUM_PITCHES, cell=config.cell,
      hidden_size=config.hidden_size, num_layers=config.num_layers,
      dropout_rate=config.dropout_rate, cell_options=base.cell_options(config))


def read_rolls(config) -> dict[str, list[np.ndarray]]:
  """{'train', 'valid', 'test'} -> the pieces' rolls [T, 88] uint8."""
  return {split: [c.roll for c in music_data.read_split(
      split, step=config.time_step, transpose=config.transpose,
      data_dir=config.data_dir or None)] for split in SPLITS}


def split_stats(rolls: Sequence[np.ndarray]) -> dict[str, float]:
  frames = sum(len(r) for r in rolls)
  return {"pieces": len(rolls), "frames": frames,
          "notes_per_frame": float(sum(r.sum() for r in rolls)) / max(frames, 1)}


def build(config) -> base.Task:
  boundaries = input_pipeline.parse_bucket_boundaries(config.bucket_boundaries)
  rolls = read_rolls(config)
  for split, pieces in rolls.items():
    if not pieces:
      raise ValueError(f"music: the {split!r} split is empty")
  longest = max(len(r) for pieces in rolls.values() for r in pieces)
  steps = input_pipeline.bucket_steps(boundaries, longest)

  def lengths(split):
    return [len(r) for r in rolls[split]]

  train_batches = input_pipeline.BucketedBatches(
      lengths("train"), steps, make_rows(rolls["train"]), config.batch_size, config.seed)
  eval_splits = {split: input_pipeline.bucketed_eval_batches(
      lengths(split), steps, make_rows(rolls[split]), config.eval_batch_size)
                 for split in ("valid", "test")}
  stats = {"bucket_steps": list(steps),
           **{split: split_stats(pieces) for split, pieces in rolls.items()}}
  return base.Task(
      model=build_model(config), loss=loss, summarize=summarize,
      train_batches=train_batches, eval_splits=eval_splits,
      examples_in=lambda batch: int(np.sum(batch["weights"])),
      run_files={DATA_STATS_FILE: (json.dumps(stats, indent=1, sort_keys=True)
                                   + "\n").encode("utf-8")})
