"""Pure-functional recurrent cells: Elman RNN, LSTM and GRU.

Dimension legend, used in every docstring of this package:
  B = batch, T = time, I = input features, H = hidden units, G = gates per cell.

Each cell is a `Cell` of four pure functions over a plain dict of params,
and optionally whole-sequence implementations that `models.unroll.rnn` may
take instead of scanning `step`:

  init(key, input_size, hidden_size, dtype) -> params
  initial_state(batch, hidden_size, dtype)  -> state (a NamedTuple with field `h`)
  project(params, xs[..., I])               -> gx[..., G*H]
      The input half of every gate for all time steps at once: one large matmul,
      hoisted out of the recurrence. Biases that sit outside the recurrent
      matmul are added here.
  step(params, state, gx_t[B, G*H], recurrent_mask=None)
                                            -> (state, y_t[B, H])
      One time step; only `h @ w_hh` and the elementwise gate work happen here.
      recurrent_mask [B, H] (only passed to cells whose
      `supports_recurrent_mask` is True): a variational dropout mask that
      multiplies h wherever h enters a recurrent matmul, see below.
  fused(params, xs[T, B, I], mask[T, B] | None, initial_state, unroll,
        recurrent_mask=None)                -> (ys[T, B, H], final_state)
      Or None. The whole recurrence, time-major, with a hand-written
      backward pass (`models.fused`). mask is bool, True on real
      steps; on the others the state is held and the output is zero. unroll:
      scan steps per loop iteration. recurrent_mask [B, H] as in `step`.
      Set by `lstm()` and `gru(reset_after=True)`.
  cudnn(params, xs[B, T, I], lengths[B] | None, initial_state)
                                            -> (ys[B, T, H], final_state)
      Or None. The whole recurrence as one cuDNN call
      (`models.cudnn`, float32 on a GPU), batch-major, with the lengths
      semantics of `models.unroll`. Set by `lstm()`.
  param_shapes(input_size, hidden_size)     -> {key: shape}
      Or None. Every param the cell reads and its shape, so that
      `models.unroll` can check params before tracing; None: read from
      `jax.eval_shape` of `init`. Every cell's params hold `w_ih [I, ...]`
      and `w_hh [H, ...]`, from which I and H are read.
  supports_recurrent_mask: bool, default False. True: `step` (and `fused`,
      where set) take the keyword `recurrent_mask`; `models.unroll` passes it
      only when a mask is given, so cells written for the three-argument
      `step` keep working, and refuses a recurrent mask for a cell without
      support rather than ignoring it. Every cell here supports it.

Variational (recurrent) dropout, Gal & Ghahramani 2016: one mask per sequence
m_h [B, H] (values 0 or 1 / keep probability), the same at every step,
multiplies h_{t-1} wherever it is the input of a weight matrix, and nowhere
else: not in the GRU's interpolation (1 - z) * n + z * h, not the LSTM's
memory c, not the carried state or the outputs. In the original GRU form the
masked h is what the reset gate scales, (r * (h * m_h)) W_hn, as in the
paper's GRU. The input mask m_x [B, I] needs nothing from the cell:
`models.unroll` multiplies the inputs by it before `project`.

Layouts follow PyTorch's gate order on purpose so weights port both ways
(`models.convert`), transposed so that matmuls read `x @ w`:

  Elman: w_ih [I, H],  w_hh [H, H],  b [H]
  LSTM:  w_ih [I, 4H], w_hh [H, 4H], b [4H]            gate order i, f, g, o
  GRU:   w_ih [I, 3H], w_hh [H, 3H], b_ih [3H], b_hh [3H]  gate order r, z, n

GRU comes in two forms, both with the update h' = (1 - z) * n + z * h:
  reset_after=True  (PyTorch / cuDNN / Flax GRUCell):
      n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
  reset_after=False (Cho et al. 2014, eq. 5-8, the original):
      n = tanh(x W_in + b_in + (r * h) W_hn + b_hn)
  The original form needs a second recurrent matmul per step (r is only known
  after the first), so it is a little slower.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from models import cudnn as cudnn_lib
from models import fused as fused_lib
from models.checks import check_one_of

Params = dict[str, jax.Array]
# See the module docstring for both signatures.
FusedFn = Callable[[Params, jax.Array, jax.Array | None, Any, int],
                   tuple[jax.Array, Any]]
CudnnFn = Callable[[Params, jax.Array, jax.Array | None, Any],
                   tuple[jax.Array, Any]]
ParamShapesFn = Callable[[int, int], dict[str, tuple[int, ...]]]


class HiddenState(NamedTuple):
  """State of Elman and GRU cells. h: [B, H]."""
  h: jax.Array


class LSTMState(NamedTuple):
  """State of the LSTM cell. h: [B, H] output, c: [B, H] memory cell."""
  h: jax.Array
  c: jax.Array


class Cell(NamedTuple):
  """A recurrent cell as pure functions; see the module docstring.

  `name` is a label for messages and configs: what runs is chosen by the
  functions here, never by the name (a user cell named 'lstm' without
  `fused` runs the generic scan of its own `step`).
  """
  name: str
  num_gates: int
  init: Callable[..., Params]
  initial_state: Callable[..., Any]
  project: Callable[[Params, jax.Array], jax.Array]
  step: Callable[..., tuple[Any, jax.Array]]
  fused: FusedFn | None = None
  cudnn: CudnnFn | None = None
  param_shapes: ParamShapesFn | None = None
  supports_recurrent_mask: bool = False


def expected_param_shapes(cell: Cell, input_size: int,
                          hidden_size: int) -> dict[str, tuple[int, ...]]:
  """{key: shape} of the params `cell` reads for I = input_size, H =
  hidden_size: `cell.param_shapes`, else the shapes `cell.init` makes
  (traced only, never run)."""
  if cell.param_shapes is not None:
    return {k: tuple(v) for k, v in
            cell.param_shapes(input_size, hidden_size).items()}
  return _init_shapes(cell.init, input_size, hidden_size)


@functools.lru_cache(maxsize=64)
def _init_shapes(init, input_size: int, hidden_size: int):
  shapes = jax.eval_shape(
      lambda: init(jax.random.PRNGKey(0), input_size, hidden_size))
  return {k: tuple(v.shape) for k, v in shapes.items()}


def _shapes(num_gates: int, *bias_keys: str) -> ParamShapesFn:
  """param_shapes of a cell with w_ih [I, G*H], w_hh [H, G*H] and biases
  [G*H] under bias_keys."""
  def param_shapes(input_size: int, hidden_size: int):
    gates = num_gates * hidden_size
    return {"w_ih": (input_size, gates), "w_hh": (hidden_size, gates),
            **{key: (gates,) for key in bias_keys}}
  return param_shapes


# ----------------------------------------------------------------------------
# Shared pieces.

def _project(params: Params, xs: jax.Array, bias_key: str) -> jax.Array:
  """xs[..., I] @ w_ih[I, G*H] + bias[G*H] -> [..., G*H], as one 2-D matmul."""
  w_ih = params["w_ih"]
  flat = xs.reshape(-1, xs.shape[-1])
  gx = flat @ w_ih + params[bias_key][None, :]
  return gx.reshape(*xs.shape[:-1], w_ih.shape[-1])


def _init_weights(key, input_size, hidden_size, num_gates, dtype):
  """LeCun-normal input weights (variance 1/I, as Flax's cells); each gate's
  recurrent block orthogonal.

  A fan-in init keeps low-dimensional inputs (e.g. the adding problem's 2
  features) visible to all 4H gate units; Glorot's (I + G*H) fan would
  shrink them by sqrt(G*H / I).
  """
  if input_size <= 0 or hidden_size <= 0:
    raise ValueError(
        f"input_size and hidden_size must be positive, got {input_size} and "
        f"{hidden_size}")
  k_ih, k_hh = jax.random.split(key)
  w_ih = jax.nn.initializers.lecun_normal()(
      k_ih, (input_size, num_gates * hidden_size), dtype)
  blocks = [jax.nn.initializers.orthogonal()(k, (hidden_size, hidden_size), dtype)
            for k in jax.random.split(k_hh, num_gates)]
  w_hh = jnp.concatenate(blocks, axis=1)
  return w_ih, w_hh


def _zeros_state(batch: int, hidden_size: int, dtype=jnp.float32):
  return jnp.zeros((batch, hidden_size), dtype)


def _dropped(h: jax.Array, recurrent_mask: jax.Array | None) -> jax.Array:
  """h [B, H] as it enters a recurrent matmul: times the variational mask
  [B, H] (cast to h's dtype) where one is given, else h itself."""
  if recurrent_mask is None:
    return h
  return h * recurrent_mask.astype(h.dtype)


# ----------------------------------------------------------------------------
# Elman RNN.

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def elman(activation: str = "tanh") -> Cell:
  """Elman RNN: h' = act(x W_ih + h W_hh + b). activation: 'tanh' or 'relu'."""
  check_one_of("activation", activation, sorted(_ACTIVATIONS))
  act = _ACTIVATIONS[activation]

  def init(key, input_size, hidden_size, dtype=jnp.float32):
    w_ih, w_hh = _init_weights(key, input_size, hidden_size, 1, dtype)
    return {"w_ih": w_ih, "w_hh": w_hh, "b": jnp.zeros((hidden_size,), dtype)}

  def initial_state(batch, hidden_size, dtype=jnp.float32):
    return HiddenState(_zeros_state(batch, hidden_size, dtype))

  def step(params, state, gx_t, recurrent_mask=None):
    h = act(gx_t + _dropped(state.h, recurrent_mask) @ params["w_hh"])
    return HiddenState(h), h

  return Cell(f"rnn_{activation}", 1, init, initial_state,
              functools.partial(_project, bias_key="b"), step,
              param_shapes=_shapes(1, "b"), supports_recurrent_mask=True)


# ----------------------------------------------------------------------------
# LSTM.

def lstm(forget_bias: float = 1.0) -> Cell:
  """LSTM with forget gate (Gers et al. 2000), gate order i, f, g, o.

    [i, f, g, o] = x W_ih + h W_hh + b
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = sigmoid(o) * tanh(c')

  forget_bias: initial value of the forget gate's bias (1.0 keeps memory open
  early in training, Jozefowicz et al. 2015); 0.0 matches PyTorch's init mean.
  """

  def init(key, input_size, hidden_size, dtype=jnp.float32):
    w_ih, w_hh = _init_weights(key, input_size, hidden_size, 4, dtype)
    b = jnp.zeros((4 * hidden_size,), dtype)
    b = b.at[hidden_size:2 * hidden_size].set(forget_bias)
    return {"w_ih": w_ih, "w_hh": w_hh, "b": b}

  def initial_state(batch, hidden_size, dtype=jnp.float32):
    return LSTMState(_zeros_state(batch, hidden_size, dtype),
                     _zeros_state(batch, hidden_size, dtype))

  def step(params, state, gx_t, recurrent_mask=None):
    z = gx_t + _dropped(state.h, recurrent_mask) @ params["w_hh"]
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * state.c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return LSTMState(h, c), h

  return Cell("lstm", 4, init, initial_state,
              functools.partial(_project, bias_key="b"), step,
              fused=_lstm_fused, cudnn=_lstm_cudnn,
              param_shapes=_shapes(4, "b"), supports_recurrent_mask=True)


def _lstm_fused(params: Params, xs: jax.Array, mask: jax.Array | None,
                state: LSTMState, unroll: int,
                recurrent_mask: jax.Array | None = None
                ) -> tuple[jax.Array, LSTMState]:
  """`Cell.fused` of the LSTM: xs [T, B, I] -> ys [T, B, H], final state;
  recurrent_mask [B, H] or None."""
  ys, h, c = fused_lib.lstm(params["w_ih"], params["b"], params["w_hh"], xs,
                            mask, state.h, state.c, unroll=unroll,
                            recurrent_mask=recurrent_mask)
  return ys, LSTMState(h, c)


def _lstm_cudnn(params: Params, xs: jax.Array, lengths: jax.Array | None,
                state: LSTMState) -> tuple[jax.Array, LSTMState]:
  """`Cell.cudnn` of the LSTM: xs [B, T, I] -> ys [B, T, H], final state."""
  ys, h, c = cudnn_lib.lstm(params, xs, lengths, state.h, state.c)
  return ys, LSTMState(h, c)


# ----------------------------------------------------------------------------
# GRU.

def gru(reset_after: bool = True) -> Cell:
  """GRU (Cho et al. 2014) with reset gate r and update gate z, order r, z, n.

  See the module docstring for the two forms selected by `reset_after`.
  """

  def init(key, input_size, hidden_size, dtype=jnp.float32):
    w_ih, w_hh = _init_weights(key, input_size, hidden_size, 3, dtype)
    zeros = jnp.zeros((3 * hidden_size,), dtype)
    return {"w_ih": w_ih, "w_hh": w_hh, "b_ih": zeros, "b_hh": zeros}

  def initial_state(batch, hidden_size, dtype=jnp.float32):
    return HiddenState(_zeros_state(batch, hidden_size, dtype))

  def step_reset_after(params, state, gx_t, recurrent_mask=None):
    h = state.h
    gh = _dropped(h, recurrent_mask) @ params["w_hh"] + params["b_hh"][None, :]
    x_r, x_z, x_n = jnp.split(gx_t, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    h = (1.0 - z) * n + z * h
    return HiddenState(h), h

  def step_reset_before(params, state, gx_t, recurrent_mask=None):
    h = state.h
    hidden = h.shape[-1]
    w_hh, b_hh = params["w_hh"], params["b_hh"]
    h_in = _dropped(h, recurrent_mask)  # both matmuls read the masked h
    gh_rz = h_in @ w_hh[:, :2 * hidden] + b_hh[None, :2 * hidden]
    x_r, x_z, x_n = jnp.split(gx_t, 3, axis=-1)
    h_r, h_z = jnp.split(gh_rz, 2, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + (r * h_in) @ w_hh[:, 2 * hidden:] + b_hh[None, 2 * hidden:])
    h = (1.0 - z) * n + z * h
    return HiddenState(h), h

  project = functools.partial(_project, bias_key="b_ih")
  shapes = _shapes(3, "b_ih", "b_hh")
  if reset_after:
    return Cell("gru", 3, init, initial_state, project, step_reset_after,
                fused=_gru_fused, param_shapes=shapes,
                supports_recurrent_mask=True)
  return Cell("gru_original", 3, init, initial_state, project,
              step_reset_before, param_shapes=shapes,
              supports_recurrent_mask=True)


def _gru_fused(params: Params, xs: jax.Array, mask: jax.Array | None,
               state: HiddenState, unroll: int,
               recurrent_mask: jax.Array | None = None
               ) -> tuple[jax.Array, HiddenState]:
  """`Cell.fused` of the reset_after GRU: xs [T, B, I] -> ys [T, B, H], final
  state; recurrent_mask [B, H] or None."""
  ys, h = fused_lib.gru(params["w_ih"], params["b_ih"], params["w_hh"],
                        params["b_hh"], xs, mask, state.h, unroll=unroll,
                        recurrent_mask=recurrent_mask)
  return ys, HiddenState(h)


# ----------------------------------------------------------------------------
# Lookup by name, for configs.

_FACTORIES: dict[str, Callable[..., Cell]] = {
    "rnn": elman,
    "lstm": lstm,
    "gru": gru,
}


def get_cell(name: str, **options) -> Cell:
  """Returns the cell called `name` ('rnn', 'lstm' or 'gru').

  options go to the factory: rnn(activation=), lstm(forget_bias=),
  gru(reset_after=). Unknown names or options raise ValueError.
  """
  if name not in _FACTORIES:
    raise ValueError(f"cell: unknown cell {name!r}; known cells are "
                     f"{sorted(_FACTORIES)}")
  try:
    return _FACTORIES[name](**options)
  except TypeError as e:
    raise ValueError(f"cell {name!r}: bad options {options}: {e}") from None

