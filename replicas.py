"""K models trained side by side in one program: replica r is the run with seed + r.

`config.num_replicas = K` stacks K train states on a new leading axis and
trains them with one jitted step (train.make_replicated_steps): vmapped over
the replicas, or unrolled into K copies of the single program
(`config.replica_program`).
Replica r is the single run of `replica_config(config, r)`: seed
`config.seed + r` (its own initial params, dropout and training data order;
the valid and test sets come from data_seed and are shared) and, with
`config.replica_sweep = "KEY=V0,V1,..."`, KEY set to V_r. Only optimiser
numbers may vary across replicas (SWEEPABLE): anything else changes shapes
or the program, which one compiled step cannot hold.

This module holds what needs no training loop: the sweep's format and
checks, the per-replica configs, stacking and slicing of pytrees, and
`ReplicaBatches`, which draws one batch per replica and stacks them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

# Config keys a replica_sweep may vary: numbers the optimiser reads at every
# step, so the K optimisers share one compiled program.
SWEEPABLE = ("learning_rate", "momentum", "grad_clip_norm", "lr_decay_factor")

# Keys added after runs already existed, with the values that reproduce those
# runs (a config.json without them is read with these).
DEFAULTS = {"num_replicas": 1, "replica_sweep": "", "replica_program": "auto"}


@dataclasses.dataclass(frozen=True)
class ReplicaSweep:
  """`KEY=V0,V1,...`: replica r trains with config KEY = values[r]."""
  key: str
  values: tuple[float, ...]


def parse_sweep(spec: str) -> ReplicaSweep | None:
  """'learning_rate=1e-3,3e-3' -> ReplicaSweep; '' -> None; ValueError if
  malformed or the key cannot vary across replicas."""
  if not spec:
    return None
  key, sep, listed = spec.partition("=")
  key = key.strip()
  if not sep or not key or not listed.strip():
    raise ValueError(f"expected 'KEY=V0,V1,...' (e.g. "
                     f"'learning_rate=1e-3,3e-3'), got {spec!r}")
  if key not in SWEEPABLE:
    raise ValueError(
        f"{key} cannot vary across the replicas of one program "
        f"(it changes shapes or is not an optimizer number); keys that can: "
        f"{list(SWEEPABLE)}. Sweep it with experiments.sweep instead")
  values = []
  for text in listed.split(","):
    try:
      value = float(text)
    except ValueError:
      raise ValueError(f"{text.strip()!r} is not a number "
                       f"(in {spec!r})") from None
    if not np.isfinite(value):
      raise ValueError(f"{key} values must be finite, got {text!r}")
    values.append(value)
  if key == "grad_clip_norm" and min(values) <= 0:
    raise ValueError("grad_clip_norm values must be > 0 (every "
                     "replica clips; sweep without 0)")
  return ReplicaSweep(key, tuple(values))


def count(config) -> int:
  """config.num_replicas, 1 for configs that predate the key."""
  return int(config.get("num_replicas", DEFAULTS["num_replicas"]))


def check(config) -> None:
  """ValueError (the message without the key's name) unless num_replicas and
  replica_sweep agree; the values' own ranges are the swept key's rule's
  business (experiments/configs/rules.py checks them)."""
  sweep = parse_sweep(config.get("replica_sweep", ""))
  if sweep is None:
    return
  if count(config) < 2:
    raise ValueError(f"set num_replicas to the number of values "
                     f"({len(sweep.values)}); with one replica set {sweep.key} "
                     f"itself")
  if len(sweep.values) != count(config):
    raise ValueError(f"{len(sweep.values)} values for "
                     f"num_replicas={count(config)}; give one value per replica")


def replica_config(config, replica: int) -> ml_collections.ConfigDict:
  """The single run that replica `replica` of `config` trains (seed + r, the
  swept value; num_replicas 1)."""
  if not 0 <= replica < count(config):
    raise ValueError(f"replica: expected 0..{count(config) - 1}, got {replica}")
  single = ml_collections.ConfigDict(config.to_dict())
  single.seed = config.seed + replica
  sweep = parse_sweep(config.get("replica_sweep", ""))
  if sweep is not None:
    single[sweep.key] = sweep.values[replica]
  if "num_replicas" in single:
    single.num_replicas = 1
    single.replica_sweep = ""
  return single


def labels(config) -> list[dict[str, Any]]:
  """What tells replica r apart, for metrics rows and summaries:
  [{'replica': r, 'seed': seed + r, KEY: value}]."""
  sweep = parse_sweep(config.get("replica_sweep", ""))
  return [{"replica": r, "seed": config.seed + r,
           **({sweep.key: sweep.values[r]} if sweep else {})}
          for r in range(count(config))]


def hyperparameters(config) -> dict[str, jax.Array]:
  """{KEY: [K] float32} for the swept key ({} without a sweep): the per-replica
  numbers the vmapped optimiser reads."""
  sweep = parse_sweep(config.get("replica_sweep", ""))
  if sweep is None:
    return {}
  return {sweep.key: jnp.asarray(sweep.values, jnp.float32)}


def stack(trees: Sequence[Any]) -> Any:
  """K pytrees of one structure -> one pytree of [K, ...] arrays."""
  return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def stacked_template(tree: Any, num_replicas: int) -> Any:
  """The abstract [K, ...] pytree of K copies of `tree` (arrays or
  jax.ShapeDtypeStruct leaves): a template to restore a checkpoint into."""
  return jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct((num_replicas,) + tuple(np.shape(leaf)),
                                        leaf.dtype), tree)


def take(tree: Any, replica: int) -> Any:
  """Replica `replica` of a stacked pytree."""
  return jax.tree_util.tree_map(lambda leaf: leaf[replica], tree)


def _padded_stack(arrays: list[np.ndarray], name: str) -> np.ndarray:
  """[K, ...] from K arrays, zero-padded on every axis but the first to the
  largest shape (batches of other length buckets); ValueError if the first
  axes or the ranks differ."""
  first = arrays[0]
  if any(a.ndim != first.ndim or a.shape[:1] != first.shape[:1] for a in arrays):
    raise ValueError(
        f"num_replicas: this task's training batches differ in size along the "
        f"first axis of '{name}' (shapes {[a.shape for a in arrays]}; e.g. "
        f"trees packed node by node), so the replicas' batches cannot be "
        f"stacked; train the seeds as separate runs (experiments.sweep can "
        f"sweep seed)")
  shape = tuple(max(sizes) for sizes in zip(*(a.shape for a in arrays)))
  out = np.zeros((len(arrays),) + shape, first.dtype)
  for r, a in enumerate(arrays):
    out[(r,) + tuple(slice(0, n) for n in a.shape)] = a
  return out


class ReplicaBatches(Iterator[dict]):
  """One training iterator per replica, drawn in step, stacked on axis 0.

  Batches of other shapes (length buckets) are zero-padded to the largest;
  padding rows and steps are what the tasks' masks and lengths already skip.
  `last_batches` are the replicas' unpadded batches of the latest draw (the
  example counts and batch checks read them). get_state()/set_state() hold
  every replica's position.
  """

  def __init__(self, iterators: Sequence[Any]):
    self._iterators = list(iterators)
    self.last_batches: list[dict] = []

  def __next__(self) -> dict:
    self.last_batches = [next(it) for it in self._iterators]
    keys = self.last_batches[0].keys()
    if any(b.keys() != keys for b in self.last_batches):
      raise ValueError("replicas: the replicas' batches hold other keys")
    return {k: _padded_stack([np.asarray(b[k]) for b in self.last_batches], k)
            for k in keys}

  def check_stackable(self) -> None:
    """Draws one batch per replica and goes back: ValueError now, before a
    workdir is written, if the task's batches cannot be stacked."""
    position = self.get_state()
    try:
      next(self)
    finally:
      self.set_state(position)

  def get_state(self) -> dict[str, Any]:
    return {"kind": "replicas",
            "replicas": [it.get_state() for it in self._iterators]}

  def set_state(self, state: dict[str, Any]) -> None:
    if state.get("kind") != "replicas" or len(state.get("replicas", ())) != len(
        self._iterators):
      raise ValueError(f"the checkpoint's data position is not that of "
                       f"{len(self._iterators)} replicas (got kind "
                       f"{state.get('kind')!r}); the workdir holds another run")
    for it, position in zip(self._iterators, state["replicas"]):
      it.set_state(position)


def mean_sd_text(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
  """'mean ± sample sd' of values * scale at `digits` decimals; one value
  alone, without the ±."""
  values = [scale * float(v) for v in values]
  if len(values) < 2:
    return f"{values[0]:.{digits}f}"
  return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def mean_and_sd(values: Sequence[dict[str, dict[str, Any]]]
                ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]]]:
  """K results {split: {metric: value}} -> (mean, sample sd over replicas) of
  the numeric metrics; other entries (e.g. lists) are left out."""
  mean, sd = {}, {}
  for split in values[0]:
    mean[split], sd[split] = {}, {}
    for name, first in values[0][split].items():
      if isinstance(first, bool) or not isinstance(first, (int, float, np.number)):
        continue
      column = np.asarray([float(v[split][name]) for v in values])
      mean[split][name] = float(np.mean(column))
      sd[split][name] = float(np.std(column, ddof=1)) if len(column) > 1 else 0.0
  return mean, sd
