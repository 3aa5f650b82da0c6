"""N -> N: one output per time step from a (bidirectional) recurrent stack.

B = batch, T = time, I = input features, H = hidden units, K = outputs per step,
W = characters per word, E = word embedding size.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import char_encoder as char_encoder_lib
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


class WordCharTagger(nn.Module):
  """Word ids [B, T], lengths [B], chars [B, T, W], char_lengths [B, T]
  -> [B, T, K] (Plank et al. 2016).

  Each word is its embedding [E] joined with its characters' vector
  (`CharWordEncoder`, [2 H_char]); the sequence of those goes through
  `encoder` (a RecurrentEncoder without an embedding: dropout on its inputs,
  then the word-level RNN), dropout, and a dense layer per word.

  word_dropout: in training, each real word id is replaced by unknown_id with
  this probability, so the unknown word's embedding is trained (the
  characters still see the word).
  """
  vocab_size: int
  embed_size: int
  char_encoder: char_encoder_lib.CharWordEncoder
  encoder: layers.RecurrentEncoder
  num_outputs: int
  word_dropout: float = 0.0
  unknown_id: int = 1
  padding_id: int = 0

  @nn.compact
  def __call__(self, inputs, lengths, chars, char_lengths, *,
               deterministic: bool = True):
    if self.encoder.vocab_size is not None:
      raise ValueError("encoder: WordCharTagger embeds the words itself; give "
                       "an encoder without vocab_size")
    if self.word_dropout > 0.0 and not deterministic:
      drop = jax.random.bernoulli(self.make_rng("dropout"), self.word_dropout,
                                  inputs.shape)
      inputs = jnp.where(drop & (inputs != self.padding_id), self.unknown_id, inputs)
    words = nn.Embed(self.vocab_size, self.embed_size, name="embed")(inputs)
    spelled = self.char_encoder(chars, char_lengths)
    xs = jnp.concatenate([words, spelled.astype(words.dtype)], axis=-1)
    ys, _ = self.encoder(xs, lengths, deterministic=deterministic)
    ys = nn.Dropout(self.encoder.dropout_rate)(ys, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(ys)
