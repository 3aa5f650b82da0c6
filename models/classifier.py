"""N -> 1: a recurrent encoder read at each sequence's last real step, then a dense head.

B = batch, T = time, I = input features, H = hidden units, K = outputs.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers


def final_features(finals, bidirectional: bool) -> jax.Array:
  """The top layer's final output h [B, H], or [B, 2H] (forward, backward)."""
  top = finals[-1]
  if bidirectional:
    forward, backward = top
    return jnp.concatenate([forward.h, backward.h], axis=-1)
  return top.h


class SequenceClassifier(nn.Module):
  """inputs [B, T, I] (or ids [B, T]), lengths [B] -> [B, K] logits or values.

  For a unidirectional encoder the summary is the state after each sequence's
  last real step; for a bidirectional one it is that forward state joined
  with the backward state after reading step 0.
  """
  encoder: layers.RecurrentEncoder
  num_outputs: int

  @nn.compact
  def __call__(self, inputs, lengths=None, *, deterministic: bool = True):
    _, finals = self.encoder(inputs, lengths, deterministic=deterministic)
    features = final_features(finals, self.encoder.bidirectional)
    features = nn.Dropout(self.encoder.dropout_rate)(
        features, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(features)
