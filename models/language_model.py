"""N -> N generative: a recurrent language model (Zaremba et al. 2014) and sampling.

B = batch, T = time, E = embedding size, H = hidden units, V = vocabulary,
P = prompt length, S = sampled tokens.

  ids [B, T] -> embedding [B, T, E] -> dropout -> stacked RNN
  (`models.layers.RNN`, dropout between layers) -> dropout -> softmax
  layer [B, T, V]

Dropout sits on the non-recurrent connections only (Zaremba et al.); the
recurrent state is carried from batch to batch: the model takes `carry` (one
state per layer, as `models.layers.RNN` returns) and returns the new one.
`reset` [B] zeroes the incoming state of chosen rows (e.g. at an epoch start).
The output layer is one [B*T, H] x [H, V] matmul, the step's biggest cost.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers


def _uniform(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


class LanguageModel(nn.Module):
  """Next-token logits from token ids, with the recurrent state carried.

  Attributes:
    vocab_size: V.
    hidden_size: H per layer.
    num_layers: recurrent layers.
    cell: 'lstm', 'gru' or 'rnn'.
    embed_size: E; 0 means E = H.
    dropout_rate: on the embeddings, between layers and before the softmax.
    tie_embeddings: use the embedding matrix, transposed, as the softmax
      weights (Press & Wolf 2017; needs E == H).
    init_scale: every parameter ~ U(-init_scale, init_scale) (Zaremba et al.);
      None keeps the cells' own init and Flax's defaults.
    cell_options: passed to the cell factory.
    unroll: scan steps per iteration.
  """
  vocab_size: int
  hidden_size: int
  num_layers: int = 2
  cell: str = "lstm"
  embed_size: int = 0
  dropout_rate: float = 0.0
  tie_embeddings: bool = False
  init_scale: float | None = 0.1
  cell_options: Mapping[str, Any] | None = None
  unroll: int = 1

  @nn.nowrap
  def _rnn(self, **kwargs) -> layers.RNN:
    return layers.RNN(
        cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
        dropout_rate=self.dropout_rate, cell_options=self.cell_options,
        init_scale=self.init_scale, unroll=self.unroll, **kwargs)

  @nn.nowrap
  def initial_carry(self, batch_size: int, dtype=jnp.float32) -> tuple[Any, ...]:
    """Zero state per layer (e.g. LSTMState(h [B, H], c [B, H])), each leaf
    its own buffer, so the training loop can donate the carry."""
    return self._rnn(parent=None).zero_states(batch_size, dtype)

  @nn.compact
  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None, *,
               carry: Any = None, reset: jax.Array | None = None,
               deterministic: bool = True) -> tuple[jax.Array, tuple[Any, ...]]:
    """inputs [B, T] int ids, lengths [B] or None -> (logits [B, T, V], carry).

    carry: the previous batch's returned carry, or None for zeros.
    reset: optional [B] bool; rows where it is True start from zeros.
    Past a row's length the state is held, so the returned carry is the state
    after its last real step.
    """
    if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
      raise ValueError(f"inputs: expected [batch, time] integer token ids, got "
                       f"shape {tuple(inputs.shape)} and dtype {inputs.dtype}")
    batch, steps = inputs.shape
    embed_size = self.embed_size or self.hidden_size
    if self.tie_embeddings and embed_size != self.hidden_size:
      raise ValueError(f"tie_embeddings: needs embed_size == hidden_size, got "
                       f"{embed_size} and {self.hidden_size}")
    if reset is not None and reset.shape != (batch,):
      raise ValueError(f"reset: expected shape ({batch},), got {reset.shape}")

    scale = self.init_scale
    embed_init = (_uniform(scale) if scale is not None
                  else nn.initializers.normal(stddev=1.0))
    embedding = self.param("embed", embed_init, (self.vocab_size, embed_size))
    # Zeros in the params' dtype, so that a bfloat16 model stays bfloat16.
    zeros = self.initial_carry(batch, embedding.dtype)
    if carry is None:
      carry = zeros
    if reset is not None:
      carry = jax.tree_util.tree_map(
          lambda z, c: jnp.where(reset[:, None], z, c), zeros, carry)
    xs = jnp.take(embedding, inputs, axis=0)                 # [B, T, E]
    xs = nn.Dropout(self.dropout_rate)(xs, deterministic=deterministic)
    ys, new_carry = self._rnn(name="rnn")(
        xs, lengths, initial_states=carry, deterministic=deterministic)
    ys = nn.Dropout(self.dropout_rate)(ys, deterministic=deterministic)

    if self.tie_embeddings:
      kernel = embedding.T                                   # [H, V]
    else:
      kernel = self.param("output_kernel", _uniform(scale) if scale is not None
                          else nn.initializers.lecun_normal(),
                          (self.hidden_size, self.vocab_size))
    bias = self.param("output_bias", _uniform(scale) if scale is not None
                      else nn.initializers.zeros, (self.vocab_size,))
    flat = ys.reshape(batch * steps, self.hidden_size)       # [B*T, H]
    logits = flat @ kernel + bias[None, :]                   # [B*T, V]
    return logits.reshape(batch, steps, self.vocab_size), new_carry


def _sample(model, params, prompt, rng, temperature, *, num_tokens, greedy):
  logits, carry = model.apply({"params": params}, prompt[None, :])  # [1, P, V]

  def pick(logits_t, key):                                   # [V] -> []
    if greedy:
      return jnp.argmax(logits_t).astype(jnp.int32)
    return jax.random.categorical(key, logits_t / temperature).astype(jnp.int32)

  first = pick(logits[0, -1], jax.random.fold_in(rng, 0))

  def step(state, key):
    token, carry = state
    logits, carry = model.apply({"params": params}, token[None, None], carry=carry)
    following = pick(logits[0, 0], key)
    return (following, carry), token

  keys = jax.random.split(jax.random.fold_in(rng, 1), num_tokens)
  _, tokens = jax.lax.scan(step, (first, carry), keys)
  return tokens                                              # [S]


_sample_jit = jax.jit(_sample, static_argnames=("model", "num_tokens", "greedy"))


def sample(model: LanguageModel, params, prompt: jax.Array, num_tokens: int,
           rng: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Continues `prompt` [P] (ids, P >= 1) by `num_tokens` sampled ids -> [S].

  Each token is drawn from softmax(logits / temperature); temperature 0 takes
  the most likely token. Jitted: one scan over the sampled steps.
  """
  prompt = jnp.asarray(prompt, jnp.int32)
  if prompt.ndim != 1 or prompt.shape[0] < 1:
    raise ValueError(f"prompt: expected at least one token id, shape [P], got "
                     f"shape {tuple(prompt.shape)}")
  if num_tokens <= 0:
    raise ValueError(f"num_tokens: expected a positive integer, got {num_tokens}")
  if temperature < 0:
    raise ValueError(f"temperature: expected a value >= 0, got {temperature}")
  try:
    hash(model)
    run = functools.partial(_sample_jit, model)
  except TypeError:  # e.g. a dict in cell_options: compile for this call only
    run = jax.jit(functools.partial(_sample, model),
                  static_argnames=("num_tokens", "greedy"))
  return run(params, prompt, rng, jnp.float32(max(temperature, 1e-6)),
             num_tokens=num_tokens, greedy=temperature == 0)
