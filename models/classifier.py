"""N -> 1: a recurrent encoder summarised over time (pooling), then a dense head.

B = batch, T = time, I = input features, H = hidden units (2H bidirectional),
K = outputs.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers
from models.checks import check_one_of

POOLINGS = ("final", "max", "mean")


def final_features(finals, bidirectional: bool) -> jax.Array:
  """The top layer's final output h [B, H], or [B, 2H] (forward, backward)."""
  top = finals[-1]
  if bidirectional:
    forward, backward = top
    return jnp.concatenate([forward.h, backward.h], axis=-1)
  return top.h


def pool_over_time(ys: jax.Array, lengths: jax.Array | None, pooling: str) -> jax.Array:
  """ys [B, T, H], lengths [B] (None: all T real) -> [B, H], the element-wise
  max ('max') or mean ('mean') over each sequence's real steps only, so
  padding never changes the result. A sequence of length 0 gives zeros."""
  check_one_of("pooling", pooling, POOLINGS[1:])
  steps = ys.shape[1]
  if lengths is None:
    lengths = jnp.full(ys.shape[:1], steps, jnp.int32)
  mask = (jnp.arange(steps)[None, :] < lengths[:, None])[..., None]   # [B, T, 1]
  if pooling == "max":
    pooled = jnp.max(jnp.where(mask, ys, -jnp.inf), axis=1)
    return jnp.where(lengths[:, None] > 0, pooled, 0.0)
  total = jnp.sum(jnp.where(mask, ys, 0.0), axis=1)
  return total / jnp.maximum(lengths, 1)[:, None].astype(ys.dtype)


class SequenceClassifier(nn.Module):
  """inputs [B, T, I] (or ids [B, T]), lengths [B] -> [B, K] logits or values.

  pooling 'final': for a unidirectional encoder the summary is the state after
  each sequence's last real step; for a bidirectional one it is that forward
  state joined with the backward state after reading step 0. 'max' / 'mean':
  the top layer's outputs pooled over the real steps (`pool_over_time`).
  Dropout (the encoder's rate) is applied to the summary before the head.
  """
  encoder: layers.RecurrentEncoder
  num_outputs: int
  pooling: str = "final"

  @nn.compact
  def __call__(self, inputs, lengths=None, *, deterministic: bool = True):
    check_one_of("pooling", self.pooling, POOLINGS)
    ys, finals = self.encoder(inputs, lengths, deterministic=deterministic)
    if self.pooling == "final":
      features = final_features(finals, self.encoder.bidirectional)
    else:
      features = pool_over_time(ys, lengths, self.pooling)
    features = nn.Dropout(self.encoder.dropout_rate)(
        features, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(features)
