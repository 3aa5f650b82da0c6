"""The one place that scans over time.

B = batch, T = time, I = input features, H = hidden units, G = gates per cell.

Public tensors are batch-major: xs [B, T, I], ys [B, T, H]. Internally the
input is transposed once to time-major [T, B, I] so that the hoisted input
projection is a plain 2-D matmul and `lax.scan` slices the leading axis; the
outputs are transposed back once. No axis swap happens inside the loop.

Lengths semantics (per sequence b, with L = lengths[b]):
  * steps t < L are real, steps t >= L are padding;
  * on padding the state is held unchanged and the output is zero, so the
    final state is the state after step L - 1 (the initial state if L == 0);
  * reverse=True runs steps L-1, ..., 0 of each sequence, so padding never
    comes first; ys are returned in the original time order.

Variational dropout (Gal & Ghahramani 2016): `rnn` takes an input mask
[B, I] and a recurrent mask [B, H], one per sequence and the same at every
step, so the caller owns the randomness (`variational_masks` draws them);
`bidirectional` and `stacked` take rates and an rng and draw independent
masks per layer and direction. The input mask multiplies xs before the input
projection (so every implementation supports it); the recurrent mask goes to
the cell, which applies it where h enters the recurrent matmul (see
`models.cells`). Padding is unaffected: the masks only change what real
steps compute.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np

from models import cells as cells_lib
from models import cudnn
from models.checks import check_one_of

Params = cells_lib.Params


# ----------------------------------------------------------------------------
# Validation: clear errors before tracing deep into a scan. Only shapes and
# Python values are read, so the checks add no operation to the computation.

def _check_cell(cell: Any, name: str = "cell") -> None:
  if not isinstance(cell, cells_lib.Cell):
    hint = (f"cells.get_cell({cell!r})" if isinstance(cell, str)
            else "cells.get_cell('lstm')")
    raise ValueError(f"{name}: expected a models.cells.Cell (e.g. {hint} or "
                     f"cells.lstm()), got {type(cell).__name__} {cell!r:.60}")


def _shape_of(params: Params, key: str, name: str) -> tuple[int, ...]:
  shape = getattr(params[key], "shape", None)
  if shape is None:
    raise ValueError(f"{name}[{key!r}]: expected an array, got "
                     f"{type(params[key]).__name__}")
  return tuple(shape)


def _check_params(cell: cells_lib.Cell, params: Params, name: str) -> tuple[int, int]:
  """Returns (I, H) read from params; raises ValueError naming `name` on a
  missing key or a wrong shape, biases included (`cells.expected_param_shapes`)."""
  if not isinstance(params, Mapping):
    raise ValueError(f"{name}: expected a dict of arrays (the cell's params, "
                     f"e.g. from cell.init), got {type(params).__name__}")
  for key in ("w_ih", "w_hh"):
    if key not in params:
      raise ValueError(f"{name}: missing key {key!r} for cell {cell.name!r}; "
                       f"got keys {sorted(params)}")
  w_ih, w_hh = _shape_of(params, "w_ih", name), _shape_of(params, "w_hh", name)
  hidden = w_hh[0] if w_hh else 0
  gates = cell.num_gates * hidden
  if len(w_hh) != 2 or w_hh[1] != gates:
    raise ValueError(f"{name}['w_hh']: expected shape [H, {cell.num_gates}H] "
                     f"= ({hidden}, {gates}) for cell {cell.name!r}, got {w_hh}")
  if len(w_ih) != 2 or w_ih[1] != gates:
    raise ValueError(f"{name}['w_ih']: expected shape [I, {gates}] for cell "
                     f"{cell.name!r}, got {w_ih}")
  expected = cells_lib.expected_param_shapes(cell, w_ih[0], hidden)
  missing = sorted(set(expected) - set(params))
  if missing:
    raise ValueError(f"{name}: missing key {missing[0]!r} for cell "
                     f"{cell.name!r}; expected keys {sorted(expected)}, got "
                     f"{sorted(params)}")
  for key, want in sorted(expected.items()):
    got = _shape_of(params, key, name)
    if got != want:
      raise ValueError(f"{name}[{key!r}]: expected shape {want} for cell "
                       f"{cell.name!r} with I={w_ih[0]}, H={hidden}, got {got}")
  return w_ih[0], hidden


def _as_inputs(xs) -> jax.Array:
  """xs as an array (a nested list is converted); ValueError if it is none."""
  if hasattr(xs, "ndim") and hasattr(xs, "shape"):
    return xs
  try:
    return jnp.asarray(xs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"xs: expected an array [batch, time, features], got "
                     f"{type(xs).__name__} ({e})") from None


def _check_inputs(xs, input_size: int) -> None:
  if xs.ndim != 3:
    raise ValueError(f"xs: expected rank 3 [batch, time, features], got shape "
                     f"{tuple(xs.shape)}")
  if xs.shape[-1] != input_size:
    raise ValueError(f"xs: expected last dimension {input_size} (the cell's "
                     f"input size), got shape {tuple(xs.shape)}")


def as_lengths(lengths):
  """lengths as an array: a jax array, tracer or numpy array unchanged, a
  list or tuple as a numpy array (so that its values are checked even under
  jit); ValueError for anything that is not numbers."""
  if lengths is None or isinstance(lengths, (jax.Array, np.ndarray)):
    values = lengths
  else:
    try:
      values = np.asarray(lengths)
    except (TypeError, ValueError) as e:
      raise ValueError(f"lengths: expected one integer per sequence, got "
                       f"{type(lengths).__name__} ({e})") from None
  if not isinstance(values, np.ndarray):
    return values
  if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
    raise ValueError(f"lengths: expected integers, got {values.dtype} values "
                     f"{lengths!r:.60}")
  if np.issubdtype(values.dtype, np.integer) and values.size and (
      values.min() < np.iinfo(np.int32).min or values.max() > np.iinfo(np.int32).max):
    raise ValueError(f"lengths: values must lie in [0, T], got min "
                     f"{values.min()} and max {values.max()}")
  return values


def check_lengths(lengths, batch: int, max_len: int) -> None:
  """Raises ValueError unless lengths is [B] integers within [0, T].

  Values are only checked when concrete (outside jit); under jit, lengths
  outside [0, T] behave as if clipped to that range, unless `rnn` is asked
  to check them (check_lengths_under_jit=True, see `checkify_lengths`).
  """
  if lengths is None:
    return
  shape = tuple(np.shape(lengths))
  if shape != (batch,):
    raise ValueError(f"lengths: expected shape ({batch},) (one per sequence), "
                     f"got {shape}")
  if not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
    raise ValueError(f"lengths: expected an integer dtype, got "
                     f"{jnp.result_type(lengths)}")
  try:
    values = np.asarray(lengths)
  except (jax.errors.TracerArrayConversionError,
          jax.errors.ConcretizationTypeError):
    return
  if values.size and (values.min() < 0 or values.max() > max_len):
    raise ValueError(f"lengths: values must lie in [0, T={max_len}], got min "
                     f"{values.min()} and max {values.max()}")


def checkify_lengths(lengths, max_len: int) -> None:
  """A `jax.experimental.checkify` check that traced lengths lie in [0, T].

  Adds the check only for traced lengths (concrete ones are checked by
  `check_lengths`). The function must then run under `checkify.checkify`:
    err, out = checkify.checkify(jax.jit(f))(...); err.throw()
  raises a JaxRuntimeError naming 'lengths' and the bad values.
  """
  if lengths is None or not isinstance(lengths, jax.core.Tracer):
    return
  checkify.check(
      jnp.all((lengths >= 0) & (lengths <= max_len)),
      f"lengths: values must lie in [0, T={max_len}], got min {{min}} and max "
      f"{{max}}", min=jnp.min(lengths), max=jnp.max(lengths))


def _check_unroll(unroll: Any) -> None:
  if isinstance(unroll, bool) or not isinstance(unroll, (int, np.integer)) or unroll < 1:
    raise ValueError(f"unroll: expected a positive integer (scan steps per "
                     f"iteration), got {unroll!r}")


def check_rate(name: str, rate: Any) -> None:
  """ValueError naming `name` unless rate is a (Python or NumPy) number in
  [0, 1)."""
  try:
    ok = (not isinstance(rate, (str, bytes, bool))
          and 0.0 <= float(rate) < 1.0)
  except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
    ok = False
  if not ok:
    raise ValueError(f"{name}: expected a value in [0, 1), got {rate!r}")


def _check_mask(mask, name: str, shape: tuple[int, int], what: str):
  """mask as an array of `shape`; ValueError naming `name` otherwise."""
  if not (hasattr(mask, "shape") and hasattr(mask, "dtype")):
    try:
      mask = jnp.asarray(mask)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{name}: expected an array {what}, got "
                       f"{type(mask).__name__} ({e})") from None
  if tuple(mask.shape) != shape:
    raise ValueError(f"{name}: expected shape {shape} {what} (one mask per "
                     f"sequence, the same at every step), got "
                     f"{tuple(mask.shape)}")
  return mask


def _check_recurrent_support(cell: cells_lib.Cell, name: str) -> None:
  if not cell.supports_recurrent_mask:
    raise ValueError(f"{name}: cell {cell.name!r} does not support a recurrent "
                     f"mask (Cell.supports_recurrent_mask is False: its step "
                     f"takes no recurrent_mask=); apply dropout to its inputs "
                     f"only, or give the cell that support")


def _check_state(state, expected, name: str) -> None:
  got = jax.tree_util.tree_map(jnp.shape, state)
  want = jax.tree_util.tree_map(jnp.shape, expected)
  if jax.tree_util.tree_structure(state) != jax.tree_util.tree_structure(expected) or got != want:
    raise ValueError(f"{name}: expected {type(expected).__name__} with shapes "
                     f"{want}, got {got}")


# ----------------------------------------------------------------------------
# Time-axis helpers.

def reverse_within_length(xs_tm: jax.Array, lengths: jax.Array | None) -> jax.Array:
  """Reverses each sequence inside its own length; padding stays in place.

  xs_tm: [T, B, ...] time-major. lengths: [B] or None (all of length T).
  Step t < L of sequence b moves to L - 1 - t; steps t >= L are unchanged.
  """
  if lengths is None:
    return jnp.flip(xs_tm, axis=0)
  steps = jnp.arange(xs_tm.shape[0])[:, None]                # [T, 1]
  lengths = lengths[None, :]                                 # [1, B]
  source = jnp.where(steps < lengths, lengths - 1 - steps, steps)  # [T, B]
  source = source.reshape(source.shape + (1,) * (xs_tm.ndim - 2))
  return jnp.take_along_axis(xs_tm, source, axis=0)


def _time_mask(lengths: jax.Array, max_len: int) -> jax.Array:
  """[T, B] bool, True where step t < lengths[b]."""
  return jnp.arange(max_len)[:, None] < lengths[None, :]


# ----------------------------------------------------------------------------
# Variational dropout masks.

def variational_masks(rng: jax.Array, batch: int, input_size: int,
                      hidden_size: int, input_rate: float = 0.0,
                      recurrent_rate: float = 0.0, dtype=jnp.float32
                      ) -> tuple[jax.Array | None, jax.Array | None]:
  """Draws the masks of variational dropout (Gal & Ghahramani 2016) for `rnn`.

  Inverted dropout: each entry is 0 with probability rate and 1 / (1 - rate)
  otherwise, so the expected masked value is the unmasked one and evaluation
  runs without masks. The input and recurrent masks come from independent
  halves of `rng`.

  Args:
    rng: a PRNG key.
    batch, input_size, hidden_size: B, I and H.
    input_rate, recurrent_rate: drop probabilities in [0, 1).
    dtype: the masks' dtype.

  Returns:
    (input_mask [B, I], recurrent_mask [B, H]); each None where its rate is 0,
    so that no mask operation is traced.
  """
  check_rate("input_rate", input_rate)
  check_rate("recurrent_rate", recurrent_rate)
  k_input, k_recurrent = jax.random.split(rng)

  def draw(key, rate, size):
    if float(rate) == 0.0:
      return None
    keep = jax.random.bernoulli(key, 1.0 - rate, (batch, size))
    return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)
  return (draw(k_input, input_rate, input_size),
          draw(k_recurrent, recurrent_rate, hidden_size))


# Folded into a stack's dropout rng for its variational masks, apart from the
# between-layer dropout keys fold_in(rng, depth).
_VARIATIONAL_STREAM = 0x7A41


def _direction_keys(rng: jax.Array | None) -> tuple[Any, Any]:
  """(forward, backward) keys of one layer's variational masks."""
  if rng is None:
    return None, None
  return jax.random.fold_in(rng, 0), jax.random.fold_in(rng, 1)


# ----------------------------------------------------------------------------
# The scan.

_IMPLEMENTATIONS = ("auto", "fused", "cudnn", "scan")


def _choose_implementation(cell: cells_lib.Cell, implementation: str, dtype,
                           shape: tuple[int, int, int]) -> str:
  """Resolves 'auto' from the cell's fields (never its name); raises
  ValueError where the implementation asked for can't run."""
  batch, max_len, _ = shape
  if implementation == "auto":  # never cuDNN, float32 only: bfloat16 runs fused
    return "scan" if cell.fused is None else "fused"
  if implementation == "fused" and cell.fused is None:
    raise ValueError(f"implementation='fused' needs a cell with a fused "
                     f"recurrence (Cell.fused, set by cells.lstm() and "
                     f"cells.gru(reset_after=True)); cell {cell.name!r} has "
                     f"none; use 'auto' or 'scan'")
  if implementation == "cudnn":
    if not (cell.cudnn is not None and dtype == jnp.float32 and batch > 0
            and max_len > 0):
      raise ValueError(f"implementation='cudnn' runs a float32 cell with a "
                       f"cuDNN kernel (Cell.cudnn, set by cells.lstm()) on a "
                       f"non-empty batch; got cell {cell.name!r} (Cell.cudnn "
                       f"{'set' if cell.cudnn is not None else 'None'}), dtype "
                       f"{jnp.dtype(dtype).name}, [B, T] = {[batch, max_len]}")
    if not cudnn.gpu_backend():
      raise ValueError(f"implementation='cudnn' needs a GPU backend; JAX's "
                       f"default backend is {jax.default_backend()!r}")
  return implementation


def _scan(cell: cells_lib.Cell, params: Params, xs_tm: jax.Array,
          mask: jax.Array | None, initial_state: Any, unroll: int,
          recurrent_mask: jax.Array | None = None) -> tuple[jax.Array, Any]:
  """The generic scan of `cell.step`: xs_tm [T, B, I], mask [T, B] bool or
  None, recurrent_mask [B, H] or None -> ys [T, B, H] (zero where masked),
  final state. The recurrent mask is passed to `step` only when given."""
  gx = cell.project(params, xs_tm)                           # [T, B, G*H]
  step = cell.step
  if recurrent_mask is not None:
    step = functools.partial(cell.step, recurrent_mask=recurrent_mask)
  if mask is None:
    def body(state, gx_t):
      return step(params, state, gx_t)
    inputs = gx
  else:
    def body(state, inputs):
      gx_t, real_t = inputs
      new_state, y_t = step(params, state, gx_t)
      keep = real_t[:, None]                                 # [B, 1]
      state = jax.tree_util.tree_map(
          lambda new, old: jnp.where(keep, new, old), new_state, state)
      return state, jnp.where(keep, y_t, jnp.zeros_like(y_t))
    inputs = (gx, mask)
  final_state, ys = jax.lax.scan(body, initial_state, inputs, unroll=unroll)
  return ys, final_state


def rnn(cell: cells_lib.Cell, params: Params, xs: jax.Array,
        lengths: jax.Array | None = None, *, reverse: bool = False,
        initial_state: Any = None, unroll: int = 1,
        implementation: str = "auto",
        check_lengths_under_jit: bool = False,
        input_mask: jax.Array | None = None,
        recurrent_mask: jax.Array | None = None) -> tuple[jax.Array, Any]:
  """Runs `cell` over a batch of padded sequences with one `lax.scan`.

  Args:
    cell: a `models.cells.Cell` (`cells.get_cell(name)` looks one up by name).
    params: the cell's params (e.g. LSTM: w_ih [I, 4H], w_hh [H, 4H], b [4H]);
      every key and shape is checked (`cells.expected_param_shapes`).
    xs: [B, T, I] inputs, batch-major.
    lengths: optional [B] int, the number of real steps of each sequence, in
      [0, T] (a jax or numpy array, or a list). None means every sequence
      has T real steps.
    reverse: run each sequence from its last real step to its first.
    initial_state: optional state (e.g. LSTMState(h [B, H], c [B, H])), cast
      to the dtype of xs and params; zeros by default.
    unroll: steps per scan iteration, passed to `lax.scan` (the fused LSTM
      and GRU take at least 2 in a forward pass that is not differentiated).
    implementation: 'fused': the cell's whole-sequence recurrence with a
      hand-written backward pass (`cell.fused`, see `models.fused`);
      'cudnn': the cell as one cuDNN call (`cell.cudnn`, see
      `models.cudnn`; float32, GPU only); 'scan': the generic scan of
      `cell.step`, differentiated by JAX; 'auto' (default): 'fused' where
      the cell has it, else 'scan'. All compute the same function (cuDNN to
      its matmul precision, see `models.cudnn`). 'auto' never picks cuDNN:
      the fused scan is faster on a GPU too (docs/performance.md).
    check_lengths_under_jit: lengths are always checked when concrete; traced
      ones (under jit) outside [0, T] behave as if clipped. True adds a
      `jax.experimental.checkify` check of traced lengths, reported by
      `checkify.checkify(jax.jit(f))` (see `checkify_lengths`); the function
      must then run under `checkify.checkify`. False (default) adds nothing.
    input_mask: optional [B, I] variational dropout mask (Gal & Ghahramani
      2016) on the inputs, the same at every step: xs[:, t] * input_mask.
      Every implementation supports it.
    recurrent_mask: optional [B, H] variational dropout mask on the state
      where it enters the recurrent matmul (h_{t-1} * recurrent_mask @ w_hh;
      the carried state and the outputs stay unmasked). Needs a cell with
      `supports_recurrent_mask` (every built-in cell) and an implementation
      other than 'cudnn'. `variational_masks` draws both masks (inverted
      dropout: 0 or 1 / keep probability); None (default) adds nothing.

  Returns:
    ys: [B, T, H] outputs in the input's time order, zero on padding.
    final_state: the state after each sequence's last real step.
  """
  return _rnn(cell, params, xs, lengths, reverse=reverse,
              initial_state=initial_state, unroll=unroll,
              implementation=implementation,
              check_lengths_under_jit=check_lengths_under_jit,
              input_mask=input_mask, recurrent_mask=recurrent_mask)


def _rnn(cell, params, xs, lengths, *, reverse, initial_state, unroll,
         implementation, check_lengths_under_jit, name="params",
         state_name="initial_state", input_mask=None, recurrent_mask=None,
         variational=None):
  """`rnn`, with the names its messages give params and the initial state.

  variational: None, or (rng, input_rate, recurrent_rate) to draw the masks
  here, once the params' sizes are known (`bidirectional`, `stacked`).
  """
  _check_cell(cell)
  check_one_of("implementation", implementation, _IMPLEMENTATIONS)
  _check_unroll(unroll)
  input_size, hidden = _check_params(cell, params, name)
  xs = _as_inputs(xs)
  _check_inputs(xs, input_size)
  batch, max_len, _ = xs.shape
  lengths = as_lengths(lengths)
  check_lengths(lengths, batch, max_len)
  if check_lengths_under_jit:
    checkify_lengths(lengths, max_len)
  dtype = jnp.result_type(xs.dtype, params["w_hh"].dtype)
  default_state = cell.initial_state(batch, hidden, dtype)
  if initial_state is None:
    initial_state = default_state
  else:
    _check_state(initial_state, default_state, state_name)
    # The state computes in the inputs' and params' dtype (a float32 state
    # given to a bfloat16 layer would promote the recurrence or break the
    # scan's carry).
    initial_state = jax.tree_util.tree_map(lambda s: s.astype(dtype),
                                           initial_state)
  if variational is not None:
    input_mask, recurrent_mask = variational_masks(
        variational[0], batch, input_size, hidden, variational[1],
        variational[2], dtype)
  if recurrent_mask is not None:
    _check_recurrent_support(cell, "recurrent_mask")
    recurrent_mask = _check_mask(recurrent_mask, "recurrent_mask",
                                 (batch, hidden), "[B, H]").astype(dtype)
  if input_mask is not None:
    input_mask = _check_mask(input_mask, "input_mask", (batch, input_size),
                             "[B, I]")
    xs = xs * input_mask.astype(xs.dtype)[:, None, :]        # [B, T, I]

  xs_tm = jnp.swapaxes(xs, 0, 1)                             # [T, B, I]
  if reverse:
    xs_tm = reverse_within_length(xs_tm, lengths)

  if implementation == "cudnn" and recurrent_mask is not None:
    raise ValueError("recurrent_mask: implementation='cudnn' runs one cuDNN "
                     "call that takes no recurrent mask; use 'auto', 'fused' "
                     "or 'scan'")
  implementation = _choose_implementation(cell, implementation, dtype, xs.shape)
  if implementation == "cudnn":  # batch-major in and out
    ys, final_state = cell.cudnn(params, jnp.swapaxes(xs_tm, 0, 1), lengths,
                                 initial_state)
    ys = jnp.swapaxes(ys, 0, 1)
  else:
    mask = None if lengths is None else _time_mask(lengths, max_len)
    run = (cell.fused if implementation == "fused"
           else functools.partial(_scan, cell))
    if recurrent_mask is not None:
      run = functools.partial(run, recurrent_mask=recurrent_mask)
    ys, final_state = run(params, xs_tm, mask, initial_state, unroll)
  if reverse:
    ys = reverse_within_length(ys, lengths)
  return jnp.swapaxes(ys, 0, 1), final_state                 # [B, T, H]


# ----------------------------------------------------------------------------
# Compositions built on `rnn`.

_MERGES = ("concat", "sum")


def bidirectional(cell: cells_lib.Cell, params: dict[str, Params],
                  xs: jax.Array, lengths: jax.Array | None = None, *,
                  merge: str = "concat", initial_states: Any = None,
                  unroll: int = 1, implementation: str = "auto",
                  check_lengths_under_jit: bool = False,
                  input_dropout_rate: float = 0.0,
                  recurrent_dropout_rate: float = 0.0,
                  dropout_rng: jax.Array | None = None
                  ) -> tuple[jax.Array, tuple[Any, Any]]:
  """A bidirectional layer (Schuster & Paliwal 1997).

  Args:
    params: {'forward': cell params, 'backward': cell params}.
    xs: [B, T, I]; lengths: optional [B].
    merge: 'concat' -> ys [B, T, 2H] (forward first), 'sum' -> ys [B, T, H].
    initial_states: optional (forward_state, backward_state).
    unroll, implementation, check_lengths_under_jit: as in `rnn`.
    input_dropout_rate, recurrent_dropout_rate: variational dropout (see
      `rnn`'s masks) in [0, 1), with masks drawn from dropout_rng,
      independent for the two directions (fold_in(dropout_rng, 0) forward,
      1 backward). Active only when dropout_rng is given.

  Returns:
    ys, and (forward_final, backward_final). The backward final state is the
    state after reading each sequence's first step.
  """
  _check_variational(cell, input_dropout_rate, recurrent_dropout_rate)
  return _bidirectional(cell, params, xs, lengths, merge=merge,
                        initial_states=initial_states, unroll=unroll,
                        implementation=implementation,
                        check_lengths_under_jit=check_lengths_under_jit,
                        rates=(input_dropout_rate, recurrent_dropout_rate),
                        variational_rng=dropout_rng)


def _variational(rng, rates):
  """`_rnn`'s variational argument: (rng, *rates) where masks are drawn."""
  if rng is None or not any(float(r) > 0.0 for r in rates):
    return None
  return (rng, *rates)


def _check_variational(cell, input_dropout_rate, recurrent_dropout_rate):
  """ValueError naming the rate unless both lie in [0, 1) and a recurrent
  rate above 0 has a cell that supports it (checked with or without an rng,
  so a model that trains also evaluates)."""
  _check_cell(cell)
  check_rate("input_dropout_rate", input_dropout_rate)
  check_rate("recurrent_dropout_rate", recurrent_dropout_rate)
  if float(recurrent_dropout_rate) > 0.0:
    _check_recurrent_support(cell, "recurrent_dropout_rate")


def _bidirectional(cell, params, xs, lengths, *, merge, initial_states,
                   name="params", states_name="initial_states",
                   rates=(0.0, 0.0), variational_rng=None, **run):
  """`bidirectional`, with the names its messages give params and states."""
  check_one_of("merge", merge, _MERGES)
  if not isinstance(params, Mapping) or set(params) != {"forward", "backward"}:
    got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
    raise ValueError(f"{name}: a bidirectional layer expects a dict with keys "
                     f"['backward', 'forward'], got {got}")
  if initial_states is None:
    initial_states = (None, None)
  elif not isinstance(initial_states, Sequence) or len(initial_states) != 2:
    raise ValueError(f"{states_name}: a bidirectional layer expects a "
                     f"(forward_state, backward_state) pair, got "
                     f"{type(initial_states).__name__}")
  fwd_init, bwd_init = initial_states
  fwd_key, bwd_key = _direction_keys(variational_rng)
  ys_fwd, final_fwd = _rnn(cell, params["forward"], xs, lengths, reverse=False,
                           initial_state=fwd_init, name=f"{name}['forward']",
                           state_name=f"{states_name}[0]",
                           variational=_variational(fwd_key, rates), **run)
  ys_bwd, final_bwd = _rnn(cell, params["backward"], xs, lengths, reverse=True,
                           initial_state=bwd_init, name=f"{name}['backward']",
                           state_name=f"{states_name}[1]",
                           variational=_variational(bwd_key, rates), **run)
  if merge == "concat":
    ys = jnp.concatenate([ys_fwd, ys_bwd], axis=-1)
  else:
    ys = ys_fwd + ys_bwd
  return ys, (final_fwd, final_bwd)


def stacked(cell: cells_lib.Cell, layers: Sequence[Params], xs: jax.Array,
            lengths: jax.Array | None = None, *, bidirectional: bool = False,
            merge: str = "concat", initial_states: Sequence[Any] | None = None,
            dropout_rate: float = 0.0, dropout_rng: jax.Array | None = None,
            unroll: int = 1, implementation: str = "auto",
            check_lengths_under_jit: bool = False,
            input_dropout_rate: float = 0.0,
            recurrent_dropout_rate: float = 0.0
            ) -> tuple[jax.Array, tuple[Any, ...]]:
  """Stacked (optionally bidirectional) layers with dropout between them.

  Args:
    layers: one params entry per layer, bottom first; each a cell params dict,
      or {'forward': ..., 'backward': ...} when bidirectional.
    xs: [B, T, I]; lengths: optional [B].
    initial_states: optional, one per layer (a (fwd, bwd) pair if
      bidirectional).
    dropout_rate: dropout on each layer's output except the last (Zaremba et
      al. 2014: non-recurrent connections only). Active only when
      dropout_rng is given.
    unroll, implementation, check_lengths_under_jit: as in `rnn`.
    input_dropout_rate, recurrent_dropout_rate: variational dropout (Gal &
      Ghahramani 2016; see `rnn`'s masks) in [0, 1) on every layer's inputs
      and recurrent state, in addition to dropout_rate; the masks are drawn
      from dropout_rng, independent for every layer and direction, and apart
      from the between-layer dropout's keys. Active only when dropout_rng is
      given.

  Returns:
    ys: [B, T, H] (or [B, T, 2H] for bidirectional concat) from the top layer,
    and a tuple of final states, one per layer (pairs when bidirectional).
  """
  layers = _check_layers(layers, initial_states, dropout_rate)
  _check_variational(cell, input_dropout_rate, recurrent_dropout_rate)
  rates = (input_dropout_rate, recurrent_dropout_rate)
  variational_rng = None
  if _variational(dropout_rng, rates) is not None:
    variational_rng = jax.random.fold_in(dropout_rng, _VARIATIONAL_STREAM)
  run = dict(unroll=unroll, implementation=implementation,
             check_lengths_under_jit=check_lengths_under_jit)
  finals = []
  for depth, layer_params in enumerate(layers):
    init = None if initial_states is None else initial_states[depth]
    layer_rng = (None if variational_rng is None
                 else jax.random.fold_in(variational_rng, depth))
    if bidirectional:
      xs, final = _bidirectional(
          cell, layer_params, xs, lengths, merge=merge, initial_states=init,
          name=f"layers[{depth}]", states_name=f"initial_states[{depth}]",
          rates=rates, variational_rng=layer_rng, **run)
    else:
      xs, final = _rnn(cell, layer_params, xs, lengths, reverse=False,
                       initial_state=init, name=f"layers[{depth}]",
                       state_name=f"initial_states[{depth}]",
                       variational=_variational(
                           _direction_keys(layer_rng)[0], rates), **run)
    finals.append(final)
    is_last = depth == len(layers) - 1
    if dropout_rate > 0.0 and dropout_rng is not None and not is_last:
      keep = jax.random.bernoulli(jax.random.fold_in(dropout_rng, depth),
                                  1.0 - dropout_rate, xs.shape)
      xs = jnp.where(keep, xs / (1.0 - dropout_rate), jnp.zeros_like(xs))
  return xs, tuple(finals)


def _check_layers(layers, initial_states, dropout_rate) -> list[Params]:
  """`stacked`'s layers as a list; ValueError naming the bad argument."""
  if isinstance(layers, Mapping) or not isinstance(layers, Sequence):
    got = (f"a dict with keys {sorted(layers)}" if isinstance(layers, Mapping)
           else type(layers).__name__)
    raise ValueError(f"layers: expected a list with one params dict per layer "
                     f"(bottom first), got {got}; wrap a single layer in a list")
  layers = list(layers)
  if not layers:
    raise ValueError("layers: expected at least one layer, got none")
  if initial_states is not None and (not isinstance(initial_states, Sequence)
                                     or len(initial_states) != len(layers)):
    got = (len(initial_states) if isinstance(initial_states, Sequence)
           else type(initial_states).__name__)
    raise ValueError(f"initial_states: expected {len(layers)} entries (one per "
                     f"layer), got {got}")
  check_rate("dropout_rate", dropout_rate)
  return layers
