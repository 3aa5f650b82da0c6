"""What a task gives the generic training loop.

A task owns its model, its data and its loss; `train.train_and_evaluate`
owns everything else (optimiser, jit, checkpoints, metrics, stopping).

Metrics are reported as *sums* per batch (e.g. {'sq_error': ..., 'count':
...}) so that evaluation over many batches of unequal size can add them up
exactly; `summarize` turns the totals into the reported numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers

Batch = Mapping[str, Any]
Sums = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
  """A trainable task.

  Attributes:
    model: a Flax module called as model(batch['inputs'], batch['lengths'],
      deterministic=...).
    loss: (outputs, batch) -> (scalar mean loss to minimise, Sums).
    summarize: totals of Sums -> {metric name: float}.
    train_batches: a checkpointable iterator (get_state/set_state) of batches.
    eval_splits: {split name: list of batches}, evaluated in full each time.
    solved: optional (metrics of the split named by `solved_split`) -> bool.
    solved_split: which split decides `solved` (default 'valid').
    examples_in: batch -> number of training examples it holds.
    initial_carry: for tasks whose model state runs on from batch to batch
      (truncated BPTT): batch size -> the carry to start from. The model is then
      called with carry= and returns (outputs, new_carry); the loop keeps the
      carry in the train state (gradients stop at batch boundaries) and
      carries it through each eval split in order. None: no carry.
    run_files: {file name: contents} the run depends on beyond its config,
      such as a subword vocabulary trained from the corpus. The loop writes
      them to WORKDIR on the first run and refuses to resume when the task
      builds different contents (the corpus changed under the run).
  """
  model: nn.Module
  loss: Callable[[jax.Array, Batch], tuple[jax.Array, Sums]]
  summarize: Callable[[Mapping[str, float]], dict[str, float]]
  train_batches: Any
  eval_splits: Mapping[str, list[Batch]]
  solved: Callable[[Mapping[str, float]], bool] | None = None
  solved_split: str = "valid"
  examples_in: Callable[[Batch], int] = lambda batch: len(batch["inputs"])
  initial_carry: Callable[[int], Any] | None = None
  run_files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)

  def carry_for(self, batch: Batch):
    """The carry to start `batch` from ((), for tasks without one)."""
    if self.initial_carry is None:
      return ()
    return self.initial_carry(len(batch["inputs"]))

  def apply(self, params, batch: Batch, rng, carry=(), *, train: bool):
    """-> (outputs, new carry)."""
    extra = {} if self.initial_carry is None else {"carry": carry}
    result = self.model.apply({"params": params}, batch["inputs"],
                              batch.get("lengths"), deterministic=not train,
                              rngs={"dropout": rng} if train else None, **extra)
    return result if self.initial_carry is not None else (result, carry)

  def init_params(self, rng, batch: Batch):
    extra = {} if self.initial_carry is None else {"carry": self.carry_for(batch)}
    return self.model.init(rng, batch["inputs"], batch.get("lengths"),
                           **extra)["params"]

  def first_batch(self) -> Batch:
    return next(iter(self.eval_splits.values()))[0]


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of values over positions where mask is true; 0 if there are none."""
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def step_mask(lengths: jax.Array, max_len: int) -> jax.Array:
  """[B, T] bool, True on real steps."""
  return jnp.arange(max_len)[None, :] < lengths[:, None]


def ratio(totals: Mapping[str, float], numerator: str, denominator: str) -> float:
  return float(totals[numerator]) / max(float(totals[denominator]), 1.0)


def cell_options(config) -> dict[str, Any]:
  """The cell factory's options for config.cell, from the flat config keys."""
  return {"lstm": {"forget_bias": config.forget_bias},
          "gru": {"reset_after": config.gru_reset_after},
          "rnn": {"activation": config.rnn_activation}}.get(config.cell, {})


def encoder(config, **overrides) -> layers.RecurrentEncoder:
  """The recurrent encoder described by the shared config keys."""
  fields = dict(cell=config.cell, hidden_size=config.hidden_size,
                num_layers=config.num_layers, cell_options=cell_options(config),
                learn_initial_state=config.get("learn_initial_state", False),
                input_dropout_rate=config.get("input_dropout_rate", 0.0),
                recurrent_dropout_rate=config.get("recurrent_dropout_rate", 0.0))
  fields.update(overrides)
  return layers.RecurrentEncoder(**fields)
