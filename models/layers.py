"""Thin Flax linen modules that own recurrent params and call the pure functions.

B = batch, T = time, I = input features, H = hidden units, G = gates per cell.

`RNN` is the one module that owns the params of a recurrent stack; the
language model, the seq2seq encoder and decoder and `RecurrentEncoder` all
use it, and it is the one place that builds the cell from its name and
options. The params of layer k live under `layer_{k}` as the cell's plain
dict (or {'forward', 'backward'} for bidirectional layers), so
`variables['params']['layer_0']` can be handed straight to `models.unroll`
or `models.convert.to_torch`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import cells as cells_lib
from models import unroll


def _uniform_init(cell: cells_lib.Cell, input_size: int, hidden_size: int,
                  bidirectional: bool, scale: float, dtype):
  """Every param of a layer ~ U(-scale, scale) (Zaremba et al. 2014), drawn
  directly with one key per leaf: the cell's own (orthogonal) init is only
  traced for its shapes, never run, as it is slow to compile."""
  def one_direction():
    return cell.init(jax.random.PRNGKey(0), input_size, hidden_size, dtype)

  def init(key):
    shapes = jax.eval_shape(
        lambda: {"forward": one_direction(), "backward": one_direction()}
        if bidirectional else one_direction())
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(treedef, [
        jax.random.uniform(k, leaf.shape, leaf.dtype, -scale, scale)
        for k, leaf in zip(keys, leaves)])
  return init


def params_dtype(module: nn.Module, default=jnp.float32) -> jnp.dtype:
  """The result dtype of the floating params `module` is applied with
  (`default` at init, before there are any): the dtype for inputs that come
  as integers or booleans (uint8 images, 0/1 frames), so that a model handed
  bfloat16 params computes in bfloat16 (precision.py)."""
  leaves = jax.tree_util.tree_leaves(module.variables.get("params", {}))
  floating = [leaf for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)]
  return jnp.result_type(*floating) if floating else jnp.dtype(default)


class StackParams(NamedTuple):
  """What `RNN.stack_params` returns.

  layers: one entry per layer, bottom first: the cell's params, or
    {'forward', 'backward'} when bidirectional (as `unroll.stacked` takes).
  initial: with learn_initial_state, each layer's learned state as a dict of
    [1, H] fields (a (forward, backward) pair when bidirectional); else None.
  """
  layers: list[Any]
  initial: list[Any] | None


class RNN(nn.Module):
  """A stack of recurrent layers, optionally bidirectional.

  `__call__` runs whole sequences through `unroll.stacked`; `step_function`
  gives one step of a unidirectional stack, for decoders.

  Attributes:
    cell: 'rnn', 'lstm' or 'gru'.
    hidden_size: H per direction.
    num_layers: layers in the stack.
    bidirectional: run each layer both ways; merge='concat' gives 2H outputs.
    dropout_rate: dropout between layers (not on recurrent connections).
    input_dropout_rate: variational dropout (Gal & Ghahramani 2016) on every
      layer's inputs: one mask per sequence, layer and direction, the same at
      every time step (`unroll.stacked`).
    recurrent_dropout_rate: variational dropout on every layer's recurrent
      state where it enters the recurrent matmul, masks as above; the
      carried state and the outputs stay unmasked.
      The three rates lie in [0, 1); dropout is active only when called with
      deterministic=False, drawing from the 'dropout' rng.
    cell_options: passed to the cell factory (e.g. {'forget_bias': 1.0}).
    init_scale: if set, every param is drawn from U(-init_scale, init_scale)
      instead of the cells' default init.
    learn_initial_state: learn each layer's (and direction's) initial state,
      shared by all sequences (params `initial_{k}`, zeros at init), instead
      of starting from zeros. Used when no initial_states are passed.
    unroll: scan steps per iteration.
    check_lengths_under_jit: check traced lengths with
      `jax.experimental.checkify` (see `unroll.rnn`); off by default.
  """
  cell: str
  hidden_size: int
  num_layers: int = 1
  bidirectional: bool = False
  merge: str = "concat"
  dropout_rate: float = 0.0
  input_dropout_rate: float = 0.0
  recurrent_dropout_rate: float = 0.0
  cell_options: Mapping[str, Any] | None = None
  init_scale: float | None = None
  learn_initial_state: bool = False
  unroll: int = 1
  param_dtype: Any = jnp.float32
  check_lengths_under_jit: bool = False

  @nn.nowrap
  def check_attributes(self) -> None:
    """ValueError naming the attribute unless the sizes and rates are valid
    (the cell's name and options are checked by `cells.get_cell`)."""
    for name in ("hidden_size", "num_layers"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    for name in ("dropout_rate", "input_dropout_rate",
                 "recurrent_dropout_rate"):
      unroll.check_rate(name, getattr(self, name))

  @nn.nowrap
  def cell_functions(self) -> cells_lib.Cell:
    """The pure cell named by `cell` and `cell_options` (works unbound)."""
    return cells_lib.get_cell(self.cell, **dict(self.cell_options or {}))

  @nn.nowrap
  def output_size(self) -> int:
    if self.bidirectional and self.merge == "concat":
      return 2 * self.hidden_size
    return self.hidden_size

  @nn.nowrap
  def zero_states(self, batch: int, dtype=jnp.float32) -> tuple[Any, ...]:
    """Zero state per layer (a (forward, backward) pair if bidirectional),
    e.g. LSTMState(h [B, H], c [B, H]). Works unbound.

    Every leaf is its own buffer (a cell's initial state may share one array
    between h and c), so a training loop can donate them.
    """
    cell = self.cell_functions()

    def zeros():
      return jax.tree_util.tree_map(
          lambda x: jnp.zeros(x.shape, x.dtype),
          cell.initial_state(batch, self.hidden_size, dtype))
    return tuple((zeros(), zeros()) if self.bidirectional else zeros()
                 for _ in range(self.num_layers))

  def _layer_init(self, cell, input_size):
    if self.init_scale is not None:
      return _uniform_init(cell, input_size, self.hidden_size,
                           self.bidirectional, self.init_scale, self.param_dtype)

    def init(key):
      if self.bidirectional:
        k_fwd, k_bwd = jax.random.split(key)
        return {
            "forward": cell.init(k_fwd, input_size, self.hidden_size, self.param_dtype),
            "backward": cell.init(k_bwd, input_size, self.hidden_size, self.param_dtype)}
      return cell.init(key, input_size, self.hidden_size, self.param_dtype)
    return init

  @nn.compact
  def stack_params(self, input_size: int) -> StackParams:
    """The stack's params, created at init for layer-0 inputs [..., I]."""
    self.check_attributes()
    cell = self.cell_functions()
    layers = []
    for depth in range(self.num_layers):
      layers.append(self.param(f"layer_{depth}", self._layer_init(cell, input_size)))
      input_size = self.output_size()
    if not self.learn_initial_state:
      return StackParams(layers, None)
    template = cell.initial_state(1, self.hidden_size, self.param_dtype)._asdict()

    def learned(name):
      return self.param(name, lambda key: template)
    initial = []
    for depth in range(self.num_layers):
      if self.bidirectional:
        initial.append((learned(f"initial_{depth}_forward"),
                        learned(f"initial_{depth}_backward")))
      else:
        initial.append(learned(f"initial_{depth}"))
    return StackParams(layers, initial)

  def _broadcast_initial(self, initial, batch: int, dtype):
    """Learned [1, H] fields -> one state [B, H] per layer (and direction)."""
    state_type = type(self.cell_functions().initial_state(1, self.hidden_size))

    def one(fields):
      return state_type(**{
          k: jnp.broadcast_to(v, (batch, self.hidden_size)).astype(dtype)
          for k, v in fields.items()})
    return [tuple(one(f) for f in layer) if self.bidirectional else one(layer)
            for layer in initial]

  def __call__(self, xs: jax.Array, lengths: jax.Array | None = None, *,
               initial_states=None, deterministic: bool = True):
    """xs [B, T, I], lengths [B] -> (ys [B, T, H or 2H], finals per layer).

    initial_states: one per layer (a (forward, backward) pair if
    bidirectional), as `unroll.stacked` takes and returns; None starts from
    zeros (or the learned states).
    """
    if getattr(xs, "ndim", None) != 3:
      raise ValueError(f"xs: expected rank 3 [batch, time, features], got shape "
                       f"{tuple(jnp.shape(xs))}")
    params = self.stack_params(xs.shape[-1])
    if initial_states is None and params.initial is not None:
      # The learned states' dtype as given (bfloat16 under mixed precision),
      # not param_dtype, which only sets their dtype at init.
      initial_states = self._broadcast_initial(
          params.initial, xs.shape[0],
          jnp.result_type(xs.dtype, *jax.tree_util.tree_leaves(params.initial)))
    use_dropout = not deterministic and (
        self.dropout_rate > 0.0 or self.input_dropout_rate > 0.0
        or self.recurrent_dropout_rate > 0.0)
    return unroll.stacked(
        self.cell_functions(), params.layers, xs, lengths,
        bidirectional=self.bidirectional, merge=self.merge,
        initial_states=initial_states, dropout_rate=self.dropout_rate,
        dropout_rng=self.make_rng("dropout") if use_dropout else None,
        unroll=self.unroll, check_lengths_under_jit=self.check_lengths_under_jit,
        input_dropout_rate=self.input_dropout_rate,
        recurrent_dropout_rate=self.recurrent_dropout_rate)

  def step_function(self, input_size: int) -> Callable[..., tuple[tuple, jax.Array]]:
    """One step of the (unidirectional) stack as a pure function, params bound:

      step(states, gates_0 [B, G*H]) -> (states, h [B, H] of the top layer)

    states: one per layer. gates_0 is layer 0's input projection (its
    `cell.project`, with the bias): the caller makes it, so it can be hoisted
    out of a loop or assembled from parts. No dropout (neither between layers
    nor variational). Being pure, `step` can
    run inside `lax` loops; input_size (layer 0's I) creates the params at init.
    """
    if self.bidirectional:
      raise ValueError("step_function: a bidirectional stack has no single "
                       "next step; use a unidirectional RNN")
    cell = self.cell_functions()
    layers = self.stack_params(input_size).layers

    def step(states, gates_0):
      new_states, h = [], None
      for depth, params in enumerate(layers):
        gx = gates_0 if depth == 0 else cell.project(params, h)
        state, h = cell.step(params, states[depth], gx)
        new_states.append(state)
      return tuple(new_states), h
    return step


class RecurrentEncoder(nn.Module):
  """Token ids [B, T] (vocab_size set) or features [B, T, I] -> RNN outputs.

  Embedding (optional), dropout on the inputs, then `RNN` (with variational
  dropout when input_dropout_rate / recurrent_dropout_rate are set). Returns
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
  input_dropout_rate: float = 0.0
  recurrent_dropout_rate: float = 0.0
  embedding_init: Callable[..., jax.Array] | None = None  # None: Flax's default

  @nn.compact
  def __call__(self, inputs, lengths=None, *, deterministic: bool = True):
    xs = inputs
    if self.vocab_size is not None:
      extra = {} if self.embedding_init is None else {"embedding_init": self.embedding_init}
      xs = nn.Embed(self.vocab_size, self.embed_size, name="embed", **extra)(inputs)
    xs = nn.Dropout(self.dropout_rate)(xs, deterministic=deterministic)
    return RNN(cell=self.cell, hidden_size=self.hidden_size,
               num_layers=self.num_layers, bidirectional=self.bidirectional,
               dropout_rate=self.dropout_rate, cell_options=self.cell_options,
               learn_initial_state=self.learn_initial_state,
               input_dropout_rate=self.input_dropout_rate,
               recurrent_dropout_rate=self.recurrent_dropout_rate,
               name="rnn")(xs, lengths, deterministic=deterministic)
