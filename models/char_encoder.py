"""Words from their characters: a bidirectional RNN over each word's characters
(Ling et al. 2015; Plank et al. 2016), its two final states joined.

B = batch, T = words, W = characters per word (padded), C = character
embedding size, H = hidden units per direction.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import classifier
from models import layers


class CharWordEncoder(nn.Module):
  """chars [B, T, W] ids (0: padding), char_lengths [B, T] -> [B, T, 2H].

  Each word is read forwards and backwards over its own characters only
  (lengths semantics of `models.unroll`), so its vector does not depend on
  how far the batch pads W, nor on the other words. Padding words (length 0)
  read one padding character; their vectors are to be masked downstream.
  """
  vocab_size: int
  embed_size: int
  hidden_size: int
  cell: str = "lstm"
  cell_options: Mapping[str, Any] | None = None

  @nn.compact
  def __call__(self, chars: jax.Array, char_lengths: jax.Array) -> jax.Array:
    if chars.ndim != 3 or char_lengths.shape != chars.shape[:2]:
      raise ValueError(f"chars: expected [batch, words, chars] with char_lengths "
                       f"[batch, words], got {chars.shape} and {char_lengths.shape}")
    batch, words, width = chars.shape
    flat = chars.reshape(batch * words, width)
    lengths = jnp.clip(char_lengths.reshape(batch * words), 1, width)
    xs = nn.Embed(self.vocab_size, self.embed_size, name="embed")(flat)
    _, finals = layers.RNN(cell=self.cell, hidden_size=self.hidden_size,
                           bidirectional=True, cell_options=self.cell_options,
                           name="rnn")(xs, lengths)
    features = classifier.final_features(finals, bidirectional=True)  # [B*T, 2H]
    return features.reshape(batch, words, 2 * self.hidden_size)
