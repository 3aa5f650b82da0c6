"""N -> 1: a recurrent encoder read at each sequence's last real step, then a dense head.

B = batch, T = time, I = input features, H = hidden units, K = outputs.
"""

from __future__ import annotations

from typing import Any, Mapping

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
  """xs [B, T, I] (or token ids [B, T] with vocab_size set), lengths [B] -> [B, K].

  For a unidirectional stack the summary is the state after each sequence's
  last real step; for a bidirectional one it is that forward state joined
  with the backward state after reading step 0.
  """
  cell: str
  hidden_size: int
  num_outputs: int
  num_layers: int = 1
  bidirectional: bool = False
  dropout_rate: float = 0.0
  vocab_size: int | None = None
  embed_size: int = 0
  cell_options: Mapping[str, Any] | None = None

  @nn.compact
  def __call__(self, inputs, lengths=None, *, deterministic: bool = True):
    xs = inputs
    if self.vocab_size is not None:
      xs = nn.Embed(self.vocab_size, self.embed_size, name="embed")(inputs)
    xs = nn.Dropout(self.dropout_rate)(xs, deterministic=deterministic)
    _, finals = layers.RNN(
        cell=self.cell, hidden_size=self.hidden_size,
        num_layers=self.num_layers, bidirectional=self.bidirectional,
        dropout_rate=self.dropout_rate, cell_options=self.cell_options,
        name="rnn")(xs, lengths, deterministic=deterministic)
    features = final_features(finals, self.bidirectional)
    features = nn.Dropout(self.dropout_rate)(features, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(features)
