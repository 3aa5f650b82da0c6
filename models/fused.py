"""Hand-differentiated LSTM and GRU recurrences: the fast path of `unroll.rnn`.

Both compute exactly the recurrences of `models.cells` (tests compare values
and gradients with autodiff through the generic scan and with finite
differences). `cells.lstm()` and `cells.gru(reset_after=True)` attach them as
`Cell.fused`. The design decisions, each measured on CPU (docs/performance.md
has the measurements):

1. A custom VJP for the whole sequence. The backward scan computes only the
   gate gradients dG_t and dG_t @ W_hh^T; dW_hh, dW_ih, the bias gradients
   and dx are single matmuls over the gate gradients of all steps after the
   loop, where autodiff would accumulate an outer product per step.
2. The input projection x_t W_ih stays inside the forward loop, beside
   h W_hh: faster on CPU than one hoisted matmul that writes and rereads a
   [T, B, G*H] array. The backward pass keeps the big matmuls.
3. One tanh for the sigmoid gates: sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, with
   the 1/2 folded into the gate columns of the weights before the loop.
4. The undifferentiated forward pass advances at least `PRIMAL_MIN_UNROLL`
   steps per loop iteration; the forward scan of a training step keeps the
   caller's `unroll`, and its backward scan takes one step per iteration
   (point 8).
5. No loop fusion slices the gates out of a per-step scan input: XLA's CPU
   backend emits scalar code for such fusions, while fusions that split a
   loop carry are vectorised, so the backward scan reads each step's gates
   into a carry (`XLA_FLAGS=--xla_dump_to=DIR` writes each kernel's LLVM IR;
   vectorised ones contain `<8 x float>`).
6. The undifferentiated forward pass is feature-major: the state is [H, B]
   and z^T = W^T h^T, a matmul shape XLA's CPU dot runs faster per step; xs
   and ys are transposed once, outside the loop. Training keeps the
   batch-major layout, which is faster there.
7. The LSTM's training forward pass saves the state c entering each step,
   not tanh(c_new): the backward pass recomputes c_new = f c + i g and its
   tanh, which saves memory at no cost in time.
8. The backward scan writes the gate gradients over the saved activations
   (LSTM: one [T, B, 4H] gates array; GRU: rz [T, B, 2H], n and h_n), so no
   separate gate-gradient array exists and a training step's working memory
   stays small. XLA updates the arrays in place only if each step reads the
   next step's slices from the arrays it has just updated
   (`_overwrite_step`) and the scan advances one step per iteration. The
   weight gradients are one matmul per saved array (`_gram`), never a
   concatenation; the LSTM keeps one [T, B, 4H] array and the GRU three,
   the faster forms of `python -m tools.perf.grad_matmuls`.
9. A variational recurrent mask m [B, H] (Gal & Ghahramani 2016), the same at
   every step, multiplies h only where it enters h W_hh; the carried state,
   the GRU's interpolation and the outputs use the unmasked h. The backward
   scan multiplies dG_t @ W_hh^T by m, dW_hh is taken from the masked states,
   and the mask's own gradient sum_t h_{t-1} * (dG_t @ W_hh^T) is accumulated
   in the backward loop (XLA drops it when the mask is not differentiated).
   Without a mask (None) the code is exactly the unmasked one: every mask
   operation is chosen in Python, none is traced. An input mask needs no
   support here: being constant over time, the caller multiplies xs by it.
10. Mixed precision: with bfloat16 inputs, params and states every matmul
   takes bfloat16 operands and accumulates in float32
   (`preferred_element_type`), and the gate pre-activations, the gate
   arithmetic and the state that integrates over time (the LSTM's c, the
   GRU's h) stay float32 inside the loops; ys, the final states and the
   saved activations are in the input dtype, and the backward pass computes
   likewise, its gradients cast to the primals' dtypes. In float32 every
   cast is a no-op, so the float32 program is the one without point 10.

Shapes: T = time, B = batch, I = inputs, H = hidden, G = gates (4 LSTM, 3
GRU). Inputs are time-major: xs [T, B, I], mask [T, B] bool or None,
recurrent_mask [B, H] or None.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp

# Fewest time steps per scan iteration of a forward pass that is not
# differentiated (point 4 above). Unrolling leaves the numbers unchanged.
PRIMAL_MIN_UNROLL = 2


def _acc_dtype(dtype):
  """The dtype of accumulations and of the state integrated over time:
  float32 for bfloat16 (point 10), else dtype itself."""
  return jnp.promote_types(dtype, jnp.float32)


def _dot(a, b):
  """a @ b with the operands as given and the products summed in
  `_acc_dtype` (bfloat16 operands -> a float32 result)."""
  return jnp.matmul(a, b, preferred_element_type=_acc_dtype(jnp.result_type(a, b)))


def _previous(first, states):
  """[T, B, H]: the state entering each step, given those leaving it."""
  return jnp.concatenate([first[None], states[:-1]], 0)


def _masked(keep, new, old):
  return new if keep is None else jnp.where(keep, new, old)


def _zero_masked(keep, value):
  return value if keep is None else jnp.where(keep, value, jnp.zeros_like(value))


def _dropped(h, recurrent_mask):
  """h as it enters the recurrent matmul: times the recurrent mask, if any
  (point 9); h and the mask of the same layout ([B, H] or [H, B])."""
  return h if recurrent_mask is None else h * recurrent_mask


def _sigmoid_scale(hidden: int, pattern: str, dtype) -> jax.Array:
  """[G*H] column scales: 0.5 for sigmoid gates ('s'), 1 for tanh ('t')."""
  return jnp.concatenate([jnp.full((hidden,), 0.5 if p == "s" else 1.0, dtype)
                          for p in pattern])


def _feature_major_scan(body, carries, xs, mask, unroll):
  """Scans `body` over feature-major data: its carries are [., B] and its
  inputs the [I, B] columns of xs and the mask row [B] (point 6).

  carries: [B, .] arrays (transposed here); xs: [T, B, I]; mask: [T, B] or
  None. Returns the final carries [B, .] and the stacked outputs [T, B, .].
  """
  xs_fm = jnp.transpose(xs, (0, 2, 1))                       # [T, I, B]
  finals, ys = jax.lax.scan(body, tuple(a.T for a in carries), (xs_fm, mask),
                            unroll=unroll)
  return tuple(a.T for a in finals), jnp.transpose(ys, (0, 2, 1))


# ----------------------------------------------------------------------------
# Shared pieces of the backward pass.

def _gram(a, parts):
  """a^T @ concat(parts, -1) for a [N, K] and parts [..., M_k] (N rows when
  flattened) -> [K, sum M_k] (weight gradients), one matmul per part and
  never the concatenation (point 8).

  On CPU, a^T is materialised first, once: XLA's CPU backend hands a dot
  that contracts the lhs's leading axis to a slower kernel than a plain
  [K, N] x [N, M] dot. The barrier keeps XLA from folding the transpose back
  into the dot. Other backends take the transposed dot as it is.
  """
  flat = [d.reshape(a.shape[0], -1) for d in parts]
  def grams(a, transpose):
    a_t = transpose(a)
    return jnp.concatenate([_dot(a_t, d) for d in flat], axis=-1)
  return jax.lax.platform_dependent(
      a, cpu=lambda a: grams(a, lambda a: jax.lax.optimization_barrier(a.T)),
      default=lambda a: grams(a, lambda a: a.T))


def _bias_grads(parts):
  """Gradient of a bias added to the gate pre-activations, from their
  gradients given as parts [..., M_k] along the gate axis -> [sum M_k]."""
  return jnp.concatenate([jnp.sum(d.reshape(-1, d.shape[-1]), axis=0,
                                  dtype=_acc_dtype(d.dtype)) for d in parts])


def _input_grads(xs, w_ih, parts):
  """Gradients of gx = xs @ w_ih + b from d_gx [T, B, G*H], given as parts
  [T, B, M_k] along the gate axis (one part: the whole d_gx), as big
  matmuls and never concatenated.

  Returns d_w_ih [I, G*H], d_b [G*H], d_xs [T, B, I], in `_acc_dtype`.
  """
  inputs = w_ih.shape[0]
  flat_x = xs.reshape(-1, inputs)
  edges = [0]
  for d in parts:
    edges.append(edges[-1] + d.shape[-1])
  d_xs = functools.reduce(operator.add, (
      _dot(d.reshape(flat_x.shape[0], -1), w_ih[:, lo:hi].T)
      for d, lo, hi in zip(parts, edges[:-1], edges[1:])))
  return _gram(flat_x, parts), _bias_grads(parts), d_xs.reshape(xs.shape)


def _overwrite_step(saved, t, rows):
  """One step of a reverse scan that overwrites what it reads.

  saved: arrays [T, B, .] that the scan reads step by step; rows: this step's
  replacements [B, .], each written at step t of its array. Returns the
  updated arrays and their step t - 1 (what the next step reads; step 0 reads
  itself back).

  The next step's slices are read from the updated arrays, never from those
  the write consumes. That is what lets XLA write in place: it copies an
  array (every step, the whole array) when another read of the array it
  updates may still be pending.
  """
  saved = tuple(jax.lax.dynamic_update_index_in_dim(a, r, t, 0)
                for a, r in zip(saved, rows))
  previous = jnp.maximum(t - 1, 0)
  return saved, tuple(jax.lax.dynamic_index_in_dim(a, previous, 0, False)
                      for a in saved)


# ----------------------------------------------------------------------------
# LSTM: gates i, f, g, o; c' = f c + i g; h' = o tanh(c').

def _lstm_update(z, c, scale, offset, axis: int):
  """One LSTM step from the scaled pre-activations z (gates along `axis`:
  -1 batch-major [B, 4H], 0 feature-major [4H, B]).

  Returns the gates (i, f, g, o), c_new and h_new.
  """
  i, f, g, o = jnp.split(offset + scale * jnp.tanh(z), 4, axis=axis)
  c_new = f * c + i * g
  return (i, f, g, o), c_new, o * jnp.tanh(c_new)


def _scaled(pattern: str, hidden: int, dtype, acc):
  """The sigmoid-via-tanh constants (point 3): the [G*H] column scale in
  dtype (for the weights) and the scale and offset in acc (for the gates)."""
  scale = _sigmoid_scale(hidden, pattern, dtype)
  offset = jnp.where(scale == 0.5, 0.5, 0.0).astype(acc)
  return scale, scale.astype(acc), offset


def _lstm_forward(w_ih, b, w_hh, xs, mask, h0, c0, rmask, unroll):
  """The forward pass of a training step: batch-major, saving per step what
  the backward pass needs. rmask: the recurrent mask [B, H] or None.

  Returns ys [T, B, H], the final h and c [B, H], and the saved arrays
  (ys, gates [T, B, 4H], c entering each step [T, B, H] (in `_acc_dtype`),
  and with a mask the held h [T, B, H]).
  """
  hidden, dtype = h0.shape[-1], h0.dtype
  acc = _acc_dtype(dtype)
  scale, gate_scale, offset = _scaled("ssts", hidden, xs.dtype, acc)
  w_ih_s, b_s, w_hh_s = w_ih * scale[None, :], (b * scale)[None, :], w_hh * scale[None, :]
  b_s = b_s.astype(acc)

  def body(carry, inputs):
    h, c = carry                                  # h in dtype, c in acc
    x_t, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    z = _dot(x_t, w_ih_s) + _dot(_dropped(h, rmask), w_hh_s) + b_s  # [B, 4H]
    gates, c_new, h_new = _lstm_update(z, c, gate_scale[None, :],
                                       offset[None, :], axis=-1)
    h_new = h_new.astype(dtype)
    y = _zero_masked(keep, h_new)
    h_new, c_new = _masked(keep, h_new, h), _masked(keep, c_new, c)
    held = () if keep is None else (h_new,)  # unmasked: the held h is y
    # Saved: the gates (one [B, 4H] array, point 8) and the state c entering
    # the step; the backward recomputes c_new and tanh(c_new) from them
    # (point 7).
    return (h_new, c_new), (y, jnp.concatenate(gates, -1).astype(dtype),
                            c) + held

  (h, c), saved = jax.lax.scan(body, (h0, c0.astype(acc)), (xs, mask),
                               unroll=unroll)
  return saved[0], h, c.astype(c0.dtype), saved


def _lstm_primal(w_ih, b, w_hh, xs, mask, h0, c0, rmask, unroll):
  """The LSTM forward pass alone, feature-major (point 6 above)."""
  hidden, dtype = h0.shape[-1], h0.dtype
  acc = _acc_dtype(dtype)
  scale, gate_scale, offset = _scaled("ssts", hidden, xs.dtype, acc)
  scale, gate_scale, offset = scale[:, None], gate_scale[:, None], offset[:, None]
  w_ih_t, w_hh_t, b_t = w_ih.T * scale, w_hh.T * scale, b[:, None] * scale
  b_t = b_t.astype(acc)
  rmask_t = None if rmask is None else rmask.T                   # [H, B]

  def body(carry, inputs):
    h, c = carry                                # [H, B]: h in dtype, c in acc
    x_t, real_t = inputs                                         # [I, B]
    keep = None if real_t is None else real_t[None, :]
    z = _dot(w_ih_t, x_t) + _dot(w_hh_t, _dropped(h, rmask_t)) + b_t  # [4H, B]
    _, c_new, h_new = _lstm_update(z, c, gate_scale, offset, axis=0)
    h_new = h_new.astype(dtype)
    return ((_masked(keep, h_new, h), _masked(keep, c_new, c)),
            _zero_masked(keep, h_new))

  (h, c), ys = _feature_major_scan(body, (h0, c0.astype(acc)), xs, mask,
                                   unroll)
  return ys, h, c.astype(c0.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def _lstm(w_ih, b, w_hh, xs, mask, h0, c0, rmask, unroll):
  return _lstm_primal(w_ih, b, w_hh, xs, mask, h0, c0, rmask,
                      max(unroll, PRIMAL_MIN_UNROLL))


def _lstm_fwd(w_ih, b, w_hh, xs, mask, h0, c0, rmask, unroll):
  ys, h, c, saved = _lstm_forward(w_ih, b, w_hh, xs, mask, h0, c0, rmask,
                                  unroll)
  return (ys, h, c), (w_ih, b, w_hh, xs, mask, h0, rmask, saved)


def _lstm_bwd(unroll, residuals, cotangents):
  del unroll  # the backward scan advances one step per iteration (point 8)
  w_ih, b, w_hh, xs, mask, h0, rmask, (ys, gates, c_prevs, *held) = residuals
  d_ys, d_h, d_c = cotangents
  steps, _, hidden = d_ys.shape
  dtype = gates.dtype
  acc = _acc_dtype(dtype)
  w_hh_t = w_hh.T

  def body(carry, inputs):
    # gates: step t's [B, 4H] (i, f, g, o); buffer: the saved gates
    # [T, B, 4H], overwritten with their gradients from step T - 1 down to
    # t + 1; d_rmask (with a recurrent mask): its gradient so far. dh, dc
    # and d_rmask in acc, gates and buffer in dtype.
    dh, dc, gates, buffer, *d_rmask = carry
    t, dy, c_prev, real_t, *h_prev_t = inputs
    i, f, g, o = jnp.split(gates.astype(acc), 4, axis=-1)
    keep = None if real_t is None else real_t[:, None]
    dy = _zero_masked(keep, dy.astype(acc))
    tc = jnp.tanh(f * c_prev + i * g)
    dh_total = dh + dy
    dc_total = dc + dh_total * o * (1.0 - tc * tc)
    d_gates = _zero_masked(keep, jnp.concatenate([
        dc_total * g * i * (1.0 - i),
        dc_total * c_prev * f * (1.0 - f),
        dc_total * i * (1.0 - g * g),
        dh_total * tc * o * (1.0 - o)], axis=-1)).astype(dtype)  # [B, 4H]
    d_dropped = _dot(d_gates, w_hh_t)                          # [B, H]
    if rmask is not None:  # point 9
      d_rmask = (d_rmask[0] + h_prev_t[0] * d_dropped,)
      d_dropped = d_dropped * rmask
    dh_prev = _masked(keep, d_dropped, dh)
    dc_prev = _masked(keep, dc_total * f, dc)
    (buffer,), (gates,) = _overwrite_step((buffer,), t, (d_gates,))
    return (dh_prev, dc_prev, gates, buffer, *d_rmask), None

  d_state = (d_h.astype(acc), d_c.astype(acc))
  if rmask is None:
    (dh0, dc0, _, d_gx), _ = jax.lax.scan(
        body, (*d_state, gates[-1], gates),
        (jnp.arange(steps), d_ys, c_prevs, mask), reverse=True)
    h_prev = _previous(h0, held[0] if held else ys)           # [T, B, H]
    d_rmask = None
  else:
    h_prev = _previous(h0, held[0] if held else ys)
    (dh0, dc0, _, d_gx, d_rmask), _ = jax.lax.scan(
        body, (*d_state, gates[-1], gates, jnp.zeros_like(rmask, acc)),
        (jnp.arange(steps), d_ys, c_prevs, mask, h_prev), reverse=True)
    h_prev = h_prev * rmask[None]                             # [T, B, H]
    d_rmask = d_rmask.astype(rmask.dtype)
  d_w_hh = _gram(h_prev.reshape(-1, hidden), (d_gx,))
  d_w_ih, d_b, d_xs = _input_grads(xs, w_ih, (d_gx,))
  return (d_w_ih.astype(w_ih.dtype), d_b.astype(b.dtype),
          d_w_hh.astype(w_hh.dtype), d_xs.astype(xs.dtype), None,
          dh0.astype(h0.dtype), dc0.astype(d_c.dtype), d_rmask)


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def lstm(w_ih: jax.Array, b: jax.Array, w_hh: jax.Array, xs: jax.Array,
         mask: jax.Array | None, h0: jax.Array, c0: jax.Array, *,
         unroll: int = 1, recurrent_mask: jax.Array | None = None
         ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The LSTM layer of `cells.lstm` over time-major inputs.

  Args:
    w_ih: [I, 4H]; b: [4H]; w_hh: [H, 4H]; xs: [T, B, I]; mask: [T, B] bool
    or None; h0, c0: [B, H]; unroll: steps per scan iteration (at least
    PRIMAL_MIN_UNROLL when the pass is not differentiated); recurrent_mask:
    [B, H] (the dtype of h0) or None, the variational dropout mask on h where
    it enters h W_hh (point 9).
  Returns:
    ys [T, B, H] (zero where masked), final h [B, H], final c [B, H], in
    the dtypes of h0 and c0 (bfloat16 ones accumulate in float32, point 10).
  """
  if recurrent_mask is not None:
    recurrent_mask = recurrent_mask.astype(h0.dtype)
  return _lstm(w_ih, b, w_hh, xs, mask, h0, c0, recurrent_mask, unroll)


# ----------------------------------------------------------------------------
# GRU, reset_after form (gates r, z, n):
#   r = sigmoid(x_r + h W_r + b_r), z = sigmoid(x_z + h W_z + b_z)
#   n = tanh(x_n + r * (h W_n + b_n)), h' = (1 - z) n + z h

def _gru_update(gx, gh, h, axis: int):
  """One GRU step from the scaled projections gx = x W_ih + b_ih and
  gh = h W_hh + b_hh (gates along `axis`: -1 batch-major [B, 3H], 0
  feature-major [3H, B]).

  Returns rz (the r and z gates), n, h_n (the n part of gh) and h_new.
  """
  hidden = h.shape[axis]
  part = lambda a, k, width: jax.lax.slice_in_dim(a, k * hidden,
                                                  (k + width) * hidden,
                                                  axis=axis)
  rz = 0.5 * jnp.tanh(part(gx, 0, 2) + part(gh, 0, 2)) + 0.5
  r, z = part(rz, 0, 1), part(rz, 1, 1)
  h_n = part(gh, 2, 1)
  n = jnp.tanh(part(gx, 2, 1) + r * h_n)
  return rz, n, h_n, n + z * (h - n)


def _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask, unroll):
  """The forward pass of a training step (as `_lstm_forward`).

  Returns ys [T, B, H], the final h [B, H] and the saved arrays (ys, rz
  [T, B, 2H], n and h_n [T, B, H], and with a mask the held h [T, B, H]).
  """
  hidden, dtype = h0.shape[-1], h0.dtype
  acc = _acc_dtype(dtype)
  scale = _sigmoid_scale(hidden, "sst", xs.dtype)
  w_ih_s, b_ih_s = w_ih * scale[None, :], (b_ih * scale)[None, :].astype(acc)
  w_hh_s, b_hh_s = w_hh * scale[None, :], (b_hh * scale)[None, :].astype(acc)

  def body(h, inputs):                                          # h in acc
    x_t, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    h_in = _dropped(h.astype(dtype), rmask)
    rz, n, h_n, h_new = _gru_update(_dot(x_t, w_ih_s) + b_ih_s,  # [B, 3H]
                                    _dot(h_in, w_hh_s) + b_hh_s, h, axis=-1)
    y = _zero_masked(keep, h_new.astype(dtype))
    h_new = _masked(keep, h_new, h)
    # Unmasked, the held h is y.
    held = () if keep is None else (h_new.astype(dtype),)
    return h_new, tuple(a.astype(dtype) for a in (y, rz, n, h_n)) + held

  h, saved = jax.lax.scan(body, h0.astype(acc), (xs, mask), unroll=unroll)
  return saved[0], h.astype(dtype), saved


def _gru_primal(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask, unroll):
  """The GRU forward pass alone, feature-major (point 6 above)."""
  hidden, dtype = h0.shape[-1], h0.dtype
  acc = _acc_dtype(dtype)
  scale = _sigmoid_scale(hidden, "sst", xs.dtype)[:, None]       # [3H, 1]
  w_ih_t, b_ih_t = w_ih.T * scale, (b_ih[:, None] * scale).astype(acc)
  w_hh_t, b_hh_t = w_hh.T * scale, (b_hh[:, None] * scale).astype(acc)
  rmask_t = None if rmask is None else rmask.T                   # [H, B]

  def body(carry, inputs):
    (h,) = carry                                          # [H, B] in acc
    x_t, real_t = inputs                                         # [I, B]
    keep = None if real_t is None else real_t[None, :]
    h_in = _dropped(h.astype(dtype), rmask_t)
    *_, h_new = _gru_update(_dot(w_ih_t, x_t) + b_ih_t,          # [3H, B]
                            _dot(w_hh_t, h_in) + b_hh_t, h, axis=0)
    return (_masked(keep, h_new, h),), _zero_masked(keep, h_new.astype(dtype))

  (h,), ys = _feature_major_scan(body, (h0.astype(acc),), xs, mask, unroll)
  return ys, h.astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def _gru(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask, unroll):
  return _gru_primal(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask,
                     max(unroll, PRIMAL_MIN_UNROLL))


def _gru_fwd(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask, unroll):
  ys, h, saved = _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask,
                              unroll)
  return (ys, h), (w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask, saved)


def _gru_bwd(unroll, residuals, cotangents):
  del unroll  # the backward scan advances one step per iteration (point 8)
  (w_ih, b_ih, w_hh, b_hh, xs, mask, h0, rmask,
   (ys, rz, n, h_n, *held)) = residuals
  d_ys, d_h = cotangents
  steps, _, hidden = d_ys.shape
  dtype = rz.dtype
  acc = _acc_dtype(dtype)
  w_hh_t = w_hh.T

  def body(carry, inputs):
    # row: step t's saved (rz, n, h_n); buffers: the saved [T, B, .] arrays,
    # overwritten from step T - 1 down to t + 1 with (d_rz, d_an, d_an * r):
    # d_gx = [d_rz, d_an] and d_gh = [d_rz, d_an * r]; d_rmask (with a
    # recurrent mask): its gradient so far. dh and d_rmask in acc, row and
    # buffers in dtype.
    dh, row, buffers, *d_rmask = carry
    t, dy, h_prev, real_t = inputs
    rz, n, h_n = (a.astype(acc) for a in row)
    keep = None if real_t is None else real_t[:, None]
    r, z = rz[:, :hidden], rz[:, hidden:]
    d_total = dh + _zero_masked(keep, dy.astype(acc))
    d_an = d_total * (1.0 - z) * (1.0 - n * n)
    d_ar = d_an * h_n * r * (1.0 - r)
    d_az = d_total * (h_prev.astype(acc) - n) * z * (1.0 - z)
    d_rz, d_an, d_an_r = (_zero_masked(keep, d).astype(dtype) for d in (
        jnp.concatenate([d_ar, d_az], -1), d_an, d_an * r))
    d_kept = d_total * z
    d_dropped = _dot(jnp.concatenate([d_rz, d_an_r], -1), w_hh_t)  # [B, H]
    if rmask is not None:  # point 9
      d_rmask = (d_rmask[0] + h_prev * d_dropped,)
      d_dropped = d_dropped * rmask
    dh_prev = _masked(keep, d_kept + d_dropped, dh)
    buffers, row = _overwrite_step(buffers, t, (d_rz, d_an, d_an_r))
    return (dh_prev, row, buffers, *d_rmask), None

  # h_prev[t] is the state entering step t: the previous step's held state.
  h_prev = _previous(h0, held[0] if held else ys)             # [T, B, H]
  saved = (rz, n, h_n)
  d_rmask = () if rmask is None else (jnp.zeros_like(rmask, acc),)
  (dh0, _, (d_rz, d_an, d_an_r), *d_rmask), _ = jax.lax.scan(
      body, (d_h.astype(acc), tuple(a[-1] for a in saved), saved, *d_rmask),
      (jnp.arange(steps), d_ys, h_prev, mask), reverse=True)
  if rmask is not None:
    h_prev = h_prev * rmask[None]                             # [T, B, H]
  d_w_hh = _gram(h_prev.reshape(-1, hidden), (d_rz, d_an_r))
  d_b_hh = _bias_grads((d_rz, d_an_r))
  d_w_ih, d_b_ih, d_xs = _input_grads(xs, w_ih, (d_rz, d_an))
  d_rmask = d_rmask[0].astype(rmask.dtype) if d_rmask else None
  return (d_w_ih.astype(w_ih.dtype), d_b_ih.astype(b_ih.dtype),
          d_w_hh.astype(w_hh.dtype), d_b_hh.astype(b_hh.dtype),
          d_xs.astype(xs.dtype), None, dh0.astype(h0.dtype), d_rmask)


_gru.defvjp(_gru_fwd, _gru_bwd)


def gru(w_ih: jax.Array, b_ih: jax.Array, w_hh: jax.Array, b_hh: jax.Array,
        xs: jax.Array, mask: jax.Array | None, h0: jax.Array, *,
        unroll: int = 1, recurrent_mask: jax.Array | None = None
        ) -> tuple[jax.Array, jax.Array]:
  """The GRU (reset_after) layer of `cells.gru` over time-major inputs.

  Args:
    w_ih: [I, 3H]; b_ih: [3H]; w_hh: [H, 3H]; b_hh: [3H]; xs: [T, B, I];
    mask: [T, B] bool or None; h0: [B, H]; unroll: steps per scan iteration
    (at least PRIMAL_MIN_UNROLL when the pass is not differentiated);
    recurrent_mask: [B, H] or None, the variational dropout mask on h where
    it enters h W_hh (point 9), not in the interpolation (1 - z) n + z h.
  Returns:
    ys [T, B, H] (zero where masked) and the final h [B, H], in h0's dtype
    (bfloat16 accumulates in float32, point 10).
  """
  if recurrent_mask is not None:
    recurrent_mask = recurrent_mask.astype(h0.dtype)
  return _gru(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, recurrent_mask, unroll)
