"""N -> N: one output per time step from a (bidirectional) recurrent stack.

B = batch, T = time, I = input features, H = hidden units, K = outputs per step.
"""

from __future__ import annotations

import flax.linen as nn

from models import layers


class SequenceTagger(nn.Module):
  """inputs [B, T, I] (or ids [B, T]), lengths [B] -> [B, T, K].

  Outputs on padding steps are computed from zero features; losses must mask
  them (see `tasks.base.masked_mean`).
  """
  encoder: layers.RecurrentEncoder
  num_outputs: int

  @nn.compact
  def __call__(self, inputs, lengths=None, *, deterministic: bool = True):
    ys, _ = self.encoder(inputs, lengths, deterministic=deterministic)
    ys = nn.Dropout(self.encoder.dropout_rate)(ys, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(ys)
