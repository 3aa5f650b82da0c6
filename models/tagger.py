"""N -> N: one output per time step from a (bidirectional) recurrent stack.

B = batch, T = time, I = input features, H = hidden units, K = outputs per step,
W = characters per word, E = word embedding size, d = output delay.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import char_encoder as char_encoder_lib
from models import layers
from models import unroll
from models.checks import check_one_of

# How the word-level RNN reads a sentence (Schuster & Paliwal 1997).
DIRECTIONS = ("forward", "backward", "bidirectional")


def reverse_batch_within_length(xs: jax.Array, lengths: jax.Array) -> jax.Array:
  """xs [B, T, ...], lengths [B] -> each row's first lengths[b] steps reversed,
  padding left in place (`unroll.reverse_within_length`, batch-major)."""
  return jnp.swapaxes(
      unroll.reverse_within_length(jnp.swapaxes(xs, 0, 1), lengths), 0, 1)


def delay_inputs(xs: jax.Array, lengths: jax.Array, end: jax.Array,
                 delay: int) -> tuple[jax.Array, jax.Array]:
  """Room for an output delay of d steps: xs [B, T, I], lengths [B], end [I]
  -> (xs [B, T + d, I], lengths + d [B]).

  Steps L .. L + d - 1 of a sentence of length L (past its end) read `end`;
  the steps beyond L + d are padding, as before.
  """
  if delay == 0:
    return xs, lengths
  padded = jnp.pad(xs, ((0, 0), (0, delay), (0, 0)))
  steps = jnp.arange(padded.shape[1])[None, :]                         # [1, T+d]
  after_end = (steps >= lengths[:, None]) & (steps < lengths[:, None] + delay)
  return (jnp.where(after_end[..., None], end.astype(xs.dtype), padded),
          lengths + delay)


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

  The word-level RNN reads the sentence in one of `DIRECTIONS` (Schuster &
  Paliwal 1997, section IV): 'bidirectional' (`encoder.bidirectional`),
  'forward', or 'backward' (the sentence reversed within its length, read
  forwards, and the outputs put back in order: the output for word t has
  seen words t .. L-1 only). The characters of each word are always read both
  ways (`char_encoder`): they see only the word itself.

  output_delay d (forward only): the output for word t is taken from step
  t + d, so the net has read d words past t before it tags t. The RNN runs
  L + d steps on a sentence of length L; the d steps past its end read a
  learned end-of-sentence input (param 'end_input' [I], zeros at init), so
  the last d words are tagged after the net has read the end symbol 1 .. d
  times. The logits keep the shape [B, T, K]; padding steps are to be masked
  downstream as usual.
  """
  vocab_size: int
  embed_size: int
  char_encoder: char_encoder_lib.CharWordEncoder
  encoder: layers.RecurrentEncoder
  num_outputs: int
  word_dropout: float = 0.0
  unknown_id: int = 1
  padding_id: int = 0
  direction: str = "bidirectional"
  output_delay: int = 0

  @nn.nowrap
  def check_direction(self) -> None:
    """ValueError naming the attribute unless direction, output_delay and
    the encoder agree."""
    check_one_of("direction", self.direction, DIRECTIONS)
    if self.encoder.bidirectional != (self.direction == "bidirectional"):
      raise ValueError(f"direction: {self.direction!r} needs an encoder with "
                       f"bidirectional={self.direction == 'bidirectional'}, got "
                       f"{self.encoder.bidirectional}")
    if (isinstance(self.output_delay, bool) or not isinstance(self.output_delay, int)
        or self.output_delay < 0):
      raise ValueError(f"output_delay: expected an integer >= 0, got "
                       f"{self.output_delay!r}")
    if self.output_delay and self.direction != "forward":
      raise ValueError(f"output_delay: only for direction='forward' (a "
                       f"{self.direction} net already reads the words after t), "
                       f"got output_delay={self.output_delay}")

  @nn.compact
  def __call__(self, inputs, lengths, chars, char_lengths, *,
               deterministic: bool = True):
    if self.encoder.vocab_size is not None:
      raise ValueError("encoder: WordCharTagger embeds the words itself; give "
                       "an encoder without vocab_size")
    self.check_direction()
    if self.word_dropout > 0.0 and not deterministic:
      drop = jax.random.bernoulli(self.make_rng("dropout"), self.word_dropout,
                                  inputs.shape)
      inputs = jnp.where(drop & (inputs != self.padding_id), self.unknown_id, inputs)
    words = nn.Embed(self.vocab_size, self.embed_size, name="embed")(inputs)
    spelled = self.char_encoder(chars, char_lengths)
    xs = jnp.concatenate([words, spelled.astype(words.dtype)], axis=-1)  # [B, T, I]
    if lengths is None:
      lengths = jnp.full(inputs.shape[:1], inputs.shape[1], jnp.int32)
    if self.output_delay:
      end = self.param("end_input", nn.initializers.zeros, xs.shape[-1:], xs.dtype)
      xs, read_lengths = delay_inputs(xs, lengths, end, self.output_delay)
    else:
      read_lengths = lengths
    if self.direction == "backward":
      xs = reverse_batch_within_length(xs, read_lengths)
    ys, _ = self.encoder(xs, read_lengths, deterministic=deterministic)
    if self.direction == "backward":
      ys = reverse_batch_within_length(ys, read_lengths)
    ys = ys[:, self.output_delay:]            # step t + d is word t's: [B, T, H]
    ys = nn.Dropout(self.encoder.dropout_rate)(ys, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(ys)
