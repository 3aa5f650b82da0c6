"""Thin Flax linen modules that own recurrent params and call the pure functions.

B = batch, T = time, I = input features, H = hidden units.

The params of layer k live under `layer_{k}` as the cell's plain dict (or
{'forward', 'backward'} for bidirectional layers), so
`variables['params']['layer_0']` can be handed straight to `models.unroll`
or `models.convert.to_torch`.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import cells as cells_lib
from models import unroll


def _uniform_like(key, params, scale):
  """Replaces every array in params by U(-scale, scale) (Zaremba et al. 2014)."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(treedef, [
      jax.random.uniform(k, x.shape, x.dtype, -scale, scale)
      for k, x in zip(keys, leaves)])


class RNN(nn.Module):
  """A stack of recurrent layers, optionally bidirectional.

  Attributes:
    cell: 'rnn', 'lstm' or 'gru'.
    hidden_size: H per direction.
    num_layers: layers in the stack.
    bidirectional: run each layer both ways; merge='concat' gives 2H outputs.
    dropout_rate: dropout between layers (not on recurrent connections).
    cell_options: passed to the cell factory (e.g. {'forget_bias': 1.0}).
    init_scale: if set, every param is drawn from U(-init_scale, init_scale)
      instead of the cells' default init.
    learn_initial_state: learn each layer's (and direction's) initial state,
      shared by all sequences (params `initial_{k}`, zeros at init), instead
      of starting from zeros. Used when no initial_states are passed.
  """
  cell: str
  hidden_size: int
  num_layers: int = 1
  bidirectional: bool = False
  merge: str = "concat"
  dropout_rate: float = 0.0
  cell_options: Mapping[str, Any] | None = None
  init_scale: float | None = None
  learn_initial_state: bool = False
  unroll: int = 1
  param_dtype: Any = jnp.float32

  def _cell(self) -> cells_lib.Cell:
    return cells_lib.get_cell(self.cell, **dict(self.cell_options or {}))

  def _layer_init(self, cell, input_size):
    def init(key):
      if self.bidirectional:
        k_fwd, k_bwd = jax.random.split(key)
        params = {
            "forward": cell.init(k_fwd, input_size, self.hidden_size, self.param_dtype),
            "backward": cell.init(k_bwd, input_size, self.hidden_size, self.param_dtype)}
      else:
        params = cell.init(key, input_size, self.hidden_size, self.param_dtype)
      if self.init_scale is not None:
        params = _uniform_like(jax.random.fold_in(key, 1), params, self.init_scale)
      return params
    return init

  def _learned_initial_states(self, cell, batch: int, dtype):
    """One learned state per layer (a (fwd, bwd) pair if bidirectional)."""
    template = cell.initial_state(1, self.hidden_size, self.param_dtype)

    def one(name):
      fields = self.param(name, lambda key: template._asdict())
      return type(template)(**{
          k: jnp.broadcast_to(v, (batch, self.hidden_size)).astype(dtype)
          for k, v in fields.items()})
    states = []
    for depth in range(self.num_layers):
      if self.bidirectional:
        states.append((one(f"initial_{depth}_forward"),
                       one(f"initial_{depth}_backward")))
      else:
        states.append(one(f"initial_{depth}"))
    return states

  def output_size(self) -> int:
    if self.bidirectional and self.merge == "concat":
      return 2 * self.hidden_size
    return self.hidden_size

  @nn.compact
  def __call__(self, xs: jax.Array, lengths: jax.Array | None = None, *,
               initial_states=None, deterministic: bool = True):
    """xs [B, T, I], lengths [B] -> (ys [B, T, H or 2H], finals per layer)."""
    if xs.ndim != 3:
      raise ValueError(f"xs: expected rank 3 [batch, time, features], got shape "
                       f"{tuple(xs.shape)}")
    cell = self._cell()
    layers = []
    input_size = xs.shape[-1]
    for depth in range(self.num_layers):
      layers.append(self.param(f"layer_{depth}", self._layer_init(cell, input_size)))
      input_size = self.output_size()
    if initial_states is None and self.learn_initial_state:
      initial_states = self._learned_initial_states(
          cell, xs.shape[0], jnp.result_type(xs.dtype, self.param_dtype))
    use_dropout = self.dropout_rate > 0.0 and not deterministic
    return unroll.stacked(
        cell, layers, xs, lengths, bidirectional=self.bidirectional,
        merge=self.merge, initial_states=initial_states,
        dropout_rate=self.dropout_rate,
        dropout_rng=self.make_rng("dropout") if use_dropout else None,
        unroll=self.unroll)


class RecurrentEncoder(nn.Module):
  """Token ids [B, T] (vocab_size set) or features [B, T, I] -> RNN outputs.

  Embedding (optional), dropout on the inputs, then `RNN`. Returns
  (ys [B, T, H or 2H], final states per layer). Shared by the N -> 1 and
  N -> N models.
  """
  cell: str
  hidden_size: int
  num_layers: int = 1
  bidirectional: bool = False
  dropout_rate: float = 0.0
  vocab_size: int | None = None
  embed_size: int = 0
  cell_options: Mapping[str, Any] | None = None
  learn_initial_state: bool = False

  @nn.compact
  def __call__(self, inputs, lengths=None, *, deterministic: bool = True):
    xs = inputs
    if self.vocab_size is not None:
      xs = nn.Embed(self.vocab_size, self.embed_size, name="embed")(inputs)
    xs = nn.Dropout(self.dropout_rate)(xs, deterministic=deterministic)
    return RNN(cell=self.cell, hidden_size=self.hidden_size,
               num_layers=self.num_layers, bidirectional=self.bidirectional,
               dropout_rate=self.dropout_rate, cell_options=self.cell_options,
               learn_initial_state=self.learn_initial_state,
               name="rnn")(xs, lengths, deterministic=deterministic)
