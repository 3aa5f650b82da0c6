"""Image captioning (1 -> N): a small CNN encoder and the seq2seq decoder.

B = batch, H x W x C = image, N = grid cells, D = CNN channels (the
memory width), T = caption steps, V = caption vocabulary.

  image [B, H, W, C] --ConvEncoder--> grid [B, N, D], vector [B, D] (fc of the grid)
  decoder states_0 = tanh(W vector + b) per layer and state field
  'show_tell'      (Vinyals et al. 2015): `seq2seq.Decoder` without
                   attention; the image enters only through the initial
                   state (their "image initialises the LSTM" form).
  'soft_attention' (Xu et al. 2015, deterministic soft attention): the same
                   decoder with additive attention over the N grid cells at
                   every step; alpha_t = softmax(v . tanh(W h_{t-1} + U a_i)),
                   the context enters the cell with the word (Xu et al.'s
                   f_att as Bahdanau's score; their gating scalar beta and
                   deep output layer are left out).

The decoder is `models.seq2seq.Decoder` itself, so greedy decoding, beam
search and teacher-forced scoring are `models.seq2seq`'s functions, which
call `encode`, `initial_carry` and `decode_step` on either model.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers
from models import seq2seq as s2s
from models.checks import check_one_of

DECODERS = ("show_tell", "soft_attention")


class ConvEncoder(nn.Module):
  """images [B, H, W, C] (uint8 0-255, or float 0-1) -> (grid [B, N, D],
  vector [B, D]): per block a 3x3 convolution, ReLU and 2x2 max pooling;
  N = (H / 2^k) (W / 2^k) for k blocks, D the last block's channels. The
  vector is LayerNorm(ReLU(W flatten(grid - its mean over cells) + b)), a
  fully connected layer over the whole grid (the CNN's fc layer in Show and
  Tell), so it keeps where things are (a mean over the grid would lose it).
  Without the centring the background's features, the same in every image,
  swamp the objects', and without the layer norm the decoder's tanh initial
  state saturates: either way it carries next to nothing of the image."""
  channels: Sequence[int] = (32, 64, 64)

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    if images.ndim != 4:
      raise ValueError(f"images: expected [batch, height, width, channels], got "
                       f"shape {tuple(images.shape)}")
    x = images.astype(layers.params_dtype(self))  # bfloat16 under bfloat16 params
    if jnp.issubdtype(images.dtype, jnp.integer):
      x = x / 255.0
    for k, channels in enumerate(self.channels):
      if x.shape[1] < 2 or x.shape[2] < 2:
        raise ValueError(f"images: {tuple(images.shape[1:3])} is too small for "
                         f"{len(self.channels)} pooling blocks")
      x = nn.relu(nn.Conv(channels, (3, 3), name=f"conv_{k}")(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    batch, height, width, depth = x.shape
    grid = x.reshape(batch, height * width, depth)
    centred = grid - jnp.mean(grid, axis=1, keepdims=True)   # the background drops out
    vector = nn.relu(nn.Dense(depth, name="fc")(centred.reshape(batch, -1)))
    vector = nn.LayerNorm(name="fc_norm")(vector)
    return grid, vector


class Captioner(nn.Module):
  """A CNN encoder and `seq2seq.Decoder`; see the module docstring.

  Called like `seq2seq.Seq2seq`: (images, lengths (ignored), decoder_inputs)
  -> logits [B, T, V]; `teacher_forced` also returns the attention weights
  [B, T, N] (zeros for show_tell).
  """
  vocab_size: int
  decoder_kind: str = "soft_attention"
  embed_size: int = 64
  hidden_size: int = 128
  num_layers: int = 1
  cell: str = "lstm"
  channels: Sequence[int] = (32, 64, 64)
  dropout_rate: float = 0.0
  cell_options: Mapping[str, Any] | None = None

  def setup(self):
    check_one_of("decoder", self.decoder_kind, DECODERS)
    if self.vocab_size <= s2s.NUM_SPECIAL:
      raise ValueError(f"vocab_size: expected more than {s2s.NUM_SPECIAL} ids (PAD, "
                       f"BOS, EOS come first), got {self.vocab_size}")
    self.encoder = ConvEncoder(tuple(self.channels))
    self.dropout = nn.Dropout(self.dropout_rate)
    self.decoder = s2s.Decoder(
        vocab_size=self.vocab_size, embed_size=self.embed_size,
        hidden_size=self.hidden_size, num_layers=self.num_layers, cell=self.cell,
        attention="bahdanau" if self.decoder_kind == "soft_attention" else "none",
        input_feeding=False, memory_size=self.channels[-1], dropout=self.dropout,
        cell_options=self.cell_options)
    self.init_params = self.param("init_state", self._init_state)

  def _init_state(self, key) -> list[dict[str, Any]]:
    """One {field: {'w' [D, H], 'b' [H]}} per decoder layer."""
    fields = self.decoder.rnn.cell_functions().initial_state(1, self.hidden_size)._fields
    keys = iter(jax.random.split(key, self.num_layers * len(fields)))
    init = s2s._affine_init(self.channels[-1], self.hidden_size)  # pylint: disable=protected-access
    return [{field: init(next(keys)) for field in fields}
            for _ in range(self.num_layers)]

  def encode(self, inputs: jax.Array, lengths: jax.Array | None = None, *,
             deterministic: bool = True) -> s2s.Encoded:
    """images [B, H, W, C] -> `seq2seq.Encoded` (memory = the grid)."""
    del lengths
    grid, vector = self.encoder(inputs)
    grid = self.dropout(grid, deterministic=deterministic)
    fields_of = type(self.decoder.rnn.cell_functions().initial_state(1, self.hidden_size))
    states = tuple(
        fields_of(**{field: jnp.tanh(s2s._affine(p, vector))  # pylint: disable=protected-access
                     for field, p in layer.items()})
        for layer in self.init_params)
    mask = jnp.ones(grid.shape[:2], bool)
    return s2s.Encoded(grid, mask, self.decoder.attention_keys(grid), states)

  def __call__(self, inputs, lengths, decoder_inputs, *,
               deterministic: bool = True) -> jax.Array:
    return self.teacher_forced(inputs, lengths, decoder_inputs,
                               deterministic=deterministic)[0]

  def teacher_forced(self, inputs, lengths, decoder_inputs, *,
                     deterministic: bool = True):
    """-> (logits [B, T, V], attention weights [B, T, N])."""
    encoded = self.encode(inputs, lengths, deterministic=deterministic)
    return self.decoder(decoder_inputs, encoded, deterministic=deterministic)

  def initial_carry(self, encoded: s2s.Encoded) -> s2s.DecoderCarry:
    return self.decoder.initial_carry(encoded)

  def decode_step(self, carry: s2s.DecoderCarry, tokens: jax.Array,
                  encoded: s2s.Encoded):
    """tokens [B] -> (carry, logits [B, V], attention weights [B, N])."""
    return self.decoder.step(carry, tokens, encoded)


def attention_penalty(weights: jax.Array, target_lengths: jax.Array) -> jax.Array:
  """Xu et al.'s doubly stochastic regulariser per caption: sum_i (1 -
  sum_t alpha_ti)^2 over the real steps t < target_length.
  weights [B, T, N], target_lengths [B] -> [B]."""
  steps = jnp.arange(weights.shape[1])[None, :, None] < target_lengths[:, None, None]
  coverage = jnp.sum(jnp.where(steps, weights, 0.0), axis=1)          # [B, N]
  return jnp.sum((1.0 - coverage) ** 2, axis=-1)
