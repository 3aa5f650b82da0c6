"""How data enters training: checkpointable batch iterators and fixed eval sets.

Every training iterator here has `get_state() -> dict` (JSON-serialisable)
and `set_state(dict)`, and the training loop saves that state in each
checkpoint, so a resumed run sees exactly the batches an uninterrupted one
would have seen.

Batches are dicts of numpy arrays with a leading batch axis B. Sequence
batches carry 'inputs' [B, T, ...] and 'lengths' [B] (int32, real steps).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

Batch = dict[str, np.ndarray]
# make_batch(rng, batch_size) -> Batch
BatchMaker = Callable[[np.random.Generator, int], Batch]

# Seed streams kept apart so train, valid and test data never coincide.
STREAMS = {"train": 0, "valid": 1, "test": 2}


def stream_rng(seed: int, stream: str, index: int) -> np.random.Generator:
  """The numpy generator for batch `index` of `stream` under `seed`."""
  return np.random.default_rng([seed, STREAMS[stream], index])


class GeneratedBatches(Iterator[Batch]):
  """An endless, reproducible stream of generated batches.

  Batch k depends only on (seed, k): resuming needs nothing but k.
  """

  def __init__(self, make_batch: BatchMaker, batch_size: int, seed: int):
    if batch_size <= 0:
      raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    self._make_batch = make_batch
    self._batch_size = batch_size
    self._seed = seed
    self._index = 0

  def __next__(self) -> Batch:
    batch = self._make_batch(stream_rng(self._seed, "train", self._index),
                             self._batch_size)
    self._index += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"kind": "generated", "index": self._index, "seed": self._seed}

  def set_state(self, state: dict[str, Any]) -> None:
    if state.get("kind") != "generated" or state.get("seed") != self._seed:
      raise ValueError(f"data iterator state {state} does not belong to a "
                       f"generated stream with seed {self._seed}")
    self._index = int(state["index"])


def generated_split(make_batch: BatchMaker, split: str, num_examples: int,
                    batch_size: int, seed: int) -> list[Batch]:
  """A fixed evaluation set of `num_examples`, generated once, in batches."""
  if num_examples <= 0:
    raise ValueError(f"num_examples for split {split!r}: expected a positive "
                     f"integer, got {num_examples}")
  batches, done, index = [], 0, 0
  while done < num_examples:
    size = min(batch_size, num_examples - done)
    batches.append(make_batch(stream_rng(seed, split, index), size))
    done += size
    index += 1
  return batches


def check_batch(batch: Batch, where: str) -> None:
  """Clear errors for malformed sequence batches, before anything is jitted."""
  if "inputs" not in batch:
    raise ValueError(f"{where}: batch has no 'inputs'; keys are {sorted(batch)}")
  inputs = batch["inputs"]
  if inputs.ndim < 2:
    raise ValueError(f"{where}: 'inputs' must be [batch, time, ...], got shape "
                     f"{inputs.shape}")
  if inputs.shape[1] == 0:
    raise ValueError(f"{where}: 'inputs' has zero time steps (shape "
                     f"{inputs.shape}); empty sequences cannot be trained on")
  lengths = batch.get("lengths")
  if lengths is not None:
    if lengths.shape != inputs.shape[:1]:
      raise ValueError(f"{where}: 'lengths' must be [{inputs.shape[0]}], got "
                       f"{lengths.shape}")
    if lengths.min() < 1 or lengths.max() > inputs.shape[1]:
      raise ValueError(f"{where}: 'lengths' must lie in [1, {inputs.shape[1]}], "
                       f"got min {lengths.min()} and max {lengths.max()}")
