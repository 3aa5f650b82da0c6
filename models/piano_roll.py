"""Next-frame model of polyphonic music (Boulanger-Lewandowski et al. 2012;
Chung et al. 2014): piano-roll frames in, one independent Bernoulli per
pitch of the next frame out.

The recurrent stack is forward only: the logits for frame t + 1 may depend
on frames <= t and nothing later.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers


class NextFrameModel(nn.Module):
  """frames [B, T, P] (0/1) -> logits [B, T, P] of the frame after each one.

  Attributes:
    num_pitches: P.
    cell, hidden_size, num_layers, cell_options: the recurrent stack.
    dropout_rate: between layers and before the output layer.
  """
  num_pitches: int
  cell: str
  hidden_size: int
  num_layers: int = 1
  dropout_rate: float = 0.0
  cell_options: Mapping[str, Any] | None = None

  @nn.nowrap
  def _rnn(self, **kwargs) -> layers.RNN:
    return layers.RNN(cell=self.cell, hidden_size=self.hidden_size,
                      num_layers=self.num_layers, dropout_rate=self.dropout_rate,
                      cell_options=self.cell_options, **kwargs)

  @nn.nowrap
  def zero_states(self, batch: int) -> tuple[Any, ...]:
    return self._rnn(parent=None).zero_states(batch)

  @nn.compact
  def __call__(self, frames: jax.Array, lengths: jax.Array | None = None, *,
               deterministic: bool = True, initial_states=None,
               return_states: bool = False):
    """-> logits [B, T, P], or (logits, final states) with return_states.

    Past a row's length the state is held, so the final states are those
    after its last real frame.
    """
    if frames.ndim != 3 or frames.shape[-1] != self.num_pitches:
      raise ValueError(f"frames: expected [batch, time, {self.num_pitches}], got "
                       f"shape {tuple(frames.shape)}")
    xs = frames.astype(layers.params_dtype(self))  # bfloat16 under bfloat16 params
    ys, finals = self._rnn(name="rnn")(xs, lengths,
                                       initial_states=initial_states,
                                       deterministic=deterministic)
    ys = nn.Dropout(self.dropout_rate)(ys, deterministic=deterministic)
    logits = nn.Dense(self.num_pitches, name="output")(ys)
    return (logits, finals) if return_states else logits


def _continue(model: NextFrameModel, params, primer: jax.Array, rng: jax.Array,
              temperature: jax.Array, *, num_frames: int) -> jax.Array:
  logits, states = model.apply({"params": params}, primer[None], return_states=True)

  def draw(logits_t, key):                                   # [P] -> [P]
    probs = jax.nn.sigmoid(logits_t / jnp.maximum(temperature, 1e-6))
    sampled = jax.random.bernoulli(key, probs)
    return jnp.where(temperature > 0, sampled, probs > 0.5).astype(jnp.float32)

  first = draw(logits[0, -1], jax.random.fold_in(rng, 0))

  def step(carry, key):
    frame, states = carry
    logits, states = model.apply({"params": params}, frame[None, None],
                                 initial_states=states, return_states=True)
    return (draw(logits[0, 0], key), states), frame

  keys = jax.random.split(jax.random.fold_in(rng, 1), num_frames)
  _, frames = jax.lax.scan(step, (first, states), keys)
  return frames


def sample(model: NextFrameModel, params, primer: jax.Array, num_frames: int,
           rng: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Continues `primer` [F, P] (F >= 1 frames) by num_frames sampled frames
  -> [num_frames, P] float 0/1. Each pitch is drawn from
  sigmoid(logit / temperature); temperature 0 keeps pitches with p > 0.5.
  One scan over the sampled frames."""
  primer = jnp.asarray(primer, jnp.float32)
  if primer.ndim != 2 or primer.shape[0] < 1 or primer.shape[1] != model.num_pitches:
    raise ValueError(f"primer: expected [frames >= 1, {model.num_pitches}], got shape "
                     f"{tuple(primer.shape)}")
  if num_frames < 1:
    raise ValueError(f"num_frames: expected a positive integer, got {num_frames}")
  if temperature < 0:
    raise ValueError(f"temperature: expected a value >= 0, got {temperature}")
  run = jax.jit(functools.partial(_continue, model), static_argnames=("num_frames",))
  return run(params, primer, rng, jnp.float32(temperature), num_frames=num_frames)
