"""N -> N: one output per time step from a (bidirectional) recurrent stack.

B = batch, T = time, I = input features, H = hidden units, K = outputs per step.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn

from models import layers


class SequenceTagger(nn.Module):
  """xs [B, T, I] (or token ids [B, T] with vocab_size set), lengths [B] -> [B, T, K].

  Outputs on padding steps are computed from zero features; losses must mask
  them (see `tasks.base.masked_mean`).
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
    ys, _ = layers.RNN(
        cell=self.cell, hidden_size=self.hidden_size,
        num_layers=self.num_layers, bidirectional=self.bidirectional,
        dropout_rate=self.dropout_rate, cell_options=self.cell_options,
        name="rnn")(xs, lengths, deterministic=deterministic)
    ys = nn.Dropout(self.dropout_rate)(ys, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(ys)
