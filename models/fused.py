"""Hand-differentiated LSTM and GRU recurrences: the fast path of `unroll.rnn`.

Both compute exactly the recurrences of `models.cells` (tests compare values
and gradients with autodiff through the generic scan). These things make them
faster than autodiff through a scan of `cell.step`:

1. A custom VJP for the whole sequence. Autodiff accumulates dW_hh as one
   [H, G*H] outer product per step inside the backward loop; here the
   backward scan computes only the gate gradients dG_t and dG_t @ W_hh^T, and
   dW_hh (and db_hh) are formed after the loop as one [H, T*B] x [T*B, G*H]
   matmul; dW_ih, db_ih and dx likewise, from the gate gradients of all
   steps at once.
2. The input projection x_t W_ih inside the forward loop, beside h W_hh. On
   CPU this beat hoisting it out as one big matmul (which writes and rereads a
   [T, B, G*H] array): 1.2-1.45x on the forward pass here (see the README's
   performance section). The backward keeps the big matmuls.
3. One tanh for the sigmoid gates: sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, with
   the 1/2 folded into the gate columns of gx and W_hh before the loop.
4. Batch chains (optional, default off). The batch is split into `chains`
   independent slices that the same scan iteration advances side by side.
   They share no data, so XLA's CPU runtime may execute their matmuls and gate
   fusions concurrently on different cores. A bare matmul + tanh loop ran
   1.44x faster with 2 chains on 2 cores here, but whole LSTM/GRU layers
   gained nothing in training and lost up to 20% in the LSTM forward pass, so
   the default is 1 chain; `benchmarks/rnn_speed.py --chains=2` measures it.

5. Two steps per iteration in the undifferentiated forward pass. Its scan
   advances at least 2 steps per loop iteration (`PRIMAL_MIN_UNROLL`): with
   the feature-major forward of point 7, 1.05x (LSTM) and 1.07x (GRU) over
   one step per iteration at the small benchmark shape; 4 steps gained
   nothing more (0.99x small, 1.03x big). The forward scan of a training
   step keeps the caller's `unroll` (1 by default): 2 gained nothing there
   (0.94-1.02x). Its backward scan takes one step per iteration (point 9).

6. No loop fusion slices the gates out of a per-step scan input. XLA's CPU
   backend (jaxlib 0.10) emitted scalar, unvectorised code for loop fusions
   that sliced i, f, g and o out of a [T, B, 4H] array read as a scan
   input: 4 of the LSTM backward scan's fusions, about 55 us of its 110 us
   of elementwise work per step at the small benchmark shape (saving four
   [T, B, H] arrays instead gained 1.05x on the whole training step). The
   backward now reads each step's [b, 4H] gates into a loop carry (point 9);
   fusions that split a carry are vectorised. `XLA_FLAGS=--xla_dump_to=DIR`
   writes each kernel's LLVM IR: vectorised ones contain `<8 x float>`.
7. Feature-major forward pass when it is not differentiated. The primal
   scan keeps the state as [H, B] and computes z^T = W^T h^T: the recurrent
   matmul then has M = G*H rows and N = B columns, which XLA's CPU dot ran
   1.2-1.35x faster per step than [B, H] x [H, G*H] at the benchmark shapes
   (B = 32 and 64). xs and ys are transposed once, outside the loop. Forward
   pass alone, paired A/B: LSTM 1.33x (small) / 1.02x (big), GRU 1.10x /
   1.11x. Training keeps the batch-major layout: a feature-major backward
   (with a transpose of the [T, B, G*H] gate gradients for the weight
   gradients) ran 0.93-0.99x.

8. Fewer saved arrays in training. The LSTM forward saves the state c
   entering each step and not tanh(c_new): the backward recomputes
   c_new = f c + i g and its tanh (one tanh per step), and needs no shifted
   copy of the saved states for c_{t-1}. XLA's working memory for a training
   step: 38.6 -> 35.4 MB at the small shape, 304 -> 279 MB at the big one;
   time 1.02x (small), 1.06x and 0.99x (big) in paired A/Bs, with
   bit-identical gradients.

9. Gate gradients written over the saved activations. The backward scan
   carries the saved gates (LSTM: one [T, B, 4H] array; GRU: rz [T, B, 2H],
   n and h_n) and overwrites step t's slices with the gate gradients (GRU:
   d_rz, d_an and d_an * r, from which d_gx = [d_rz, d_an] and
   d_gh = [d_rz, d_an * r]) once it has used them, so no separate
   gate-gradient array exists. The GRU's weight gradients are one matmul
   per array (`_gram`), never a concatenation. Two things keep XLA
   from copying the arrays (the whole of each, every step): each step reads
   the next step's slices from the arrays it has just updated
   (`_overwrite_step`), never from the arrays the update consumes; and the
   scan advances one step per iteration whatever `unroll` says (unrolled,
   the next step's reads fuse into its consumers and interfere again).
   XLA's temporary memory for a training step (grads of sum(ys) w.r.t.
   params and inputs): LSTM 37.0 -> 24.5 MiB at the small shape,
   280.5 -> 180.5 MiB at the big one; GRU 39.9 -> 21.6 and
   304.4 -> 157.4 MiB. The small shapes now stay under glibc's 32 MB mmap
   limit, so a call no longer page-faults its working memory afresh (see
   the README's performance section). The LSTM keeps one [T, B, 4H] array
   rather than four [T, B, H] ones, and the GRU three arrays rather than one
   [T, B, 3H] d_gx and d_an * r: `python -m benchmarks.grad_matmuls` timed
   the weight-gradient matmuls split as 0.99x (small) and 0.93x (big) as
   fast as whole for the LSTM, and 1.12x and 1.00x for the GRU.

Shapes: T = time, B = batch, I = inputs, H = hidden, G = gates (4 LSTM, 3
GRU). Inputs are time-major: xs [T, B, I], mask [T, B] bool or None.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

# Fewest time steps per scan iteration of a forward pass that is not
# differentiated (see point 5 above). Unrolling leaves the numbers unchanged.
PRIMAL_MIN_UNROLL = 2

# ----------------------------------------------------------------------------
# Batch chains.

def chain_bounds(batch: int, chains: int) -> list[tuple[int, int]]:
  """[start, stop) of each chain's rows; sizes differ by at most one."""
  if chains < 1 or chains > max(batch, 1):
    raise ValueError(f"chains: expected an integer in [1, batch={batch}], got "
                     f"{chains}")
  edges = [round(k * batch / chains) for k in range(chains + 1)]
  return list(zip(edges[:-1], edges[1:]))


def _split(tree, bounds, axis: int):
  """One pytree per chain, sliced along `axis` (None leaves stay None)."""
  return tuple(jax.tree_util.tree_map(
      lambda a, lo=lo, hi=hi: jax.lax.slice_in_dim(a, lo, hi, axis=axis), tree)
               for lo, hi in bounds)


def _join(trees: Sequence[Any], axis: int):
  return jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts, axis),
                                *trees)


def _scan_chains(body: Callable, carries: tuple, xs: tuple, *, reverse: bool,
                 unroll: int):
  """lax.scan of `body` over every chain at once (one loop, independent
  chains). carries[k], xs[k]: chain k's carry and time-major inputs.
  Returns (final carries, outputs), each a tuple over chains."""
  def step(carry, inputs):
    results = [body(c, x) for c, x in zip(carry, inputs)]
    return tuple(r[0] for r in results), tuple(r[1] for r in results)
  return jax.lax.scan(step, carries, xs, reverse=reverse, unroll=unroll)


def _previous(first, states):
  """[T, b, H]: the state entering each step, given those leaving it."""
  return jnp.concatenate([first[None], states[:-1]], 0)


def _masked(keep, new, old):
  return new if keep is None else jnp.where(keep, new, old)


def _zero_masked(keep, value):
  return value if keep is None else jnp.where(keep, value, jnp.zeros_like(value))


def _sigmoid_scale(hidden: int, pattern: str, dtype) -> jax.Array:
  """[G*H] column scales: 0.5 for sigmoid gates ('s'), 1 for tanh ('t')."""
  return jnp.concatenate([jnp.full((hidden,), 0.5 if p == "s" else 1.0, dtype)
                          for p in pattern])


# ----------------------------------------------------------------------------
# Shared pieces of the backward pass.

def _gram(a, parts):
  """a^T @ concat(parts, -1) for a [N, K] and parts [..., M_k] (N rows when
  flattened) -> [K, sum M_k] (weight gradients), one matmul per part and
  never the concatenation (point 9).

  On CPU, a^T is materialised first, once: XLA's CPU backend hands a dot
  that contracts the lhs's leading axis to a slower kernel than a plain
  [K, N] x [N, M] dot (here about 100 against 125-135 GFLOP/s at the
  weight-gradient shapes; up to 1.1x on a whole LSTM training step at the
  big benchmark shape). The barrier keeps XLA from folding the transpose
  back into the dot. Other backends take the transposed dot as it is.
  """
  flat = [d.reshape(a.shape[0], -1) for d in parts]
  def grams(a, transpose):
    a_t = transpose(a)
    return jnp.concatenate([a_t @ d for d in flat], axis=-1)
  return jax.lax.platform_dependent(
      a, cpu=lambda a: grams(a, lambda a: jax.lax.optimization_barrier(a.T)),
      default=lambda a: grams(a, lambda a: a.T))


def _bias_grads(parts):
  """Gradient of a bias added to the gate pre-activations, from their
  gradients given as parts [..., M_k] along the gate axis -> [sum M_k]."""
  return jnp.concatenate([jnp.sum(d.reshape(-1, d.shape[-1]), axis=0)
                          for d in parts])


def _input_grads(xs, w_ih, parts):
  """Gradients of gx = xs @ w_ih + b from d_gx [T, B, G*H], given as parts
  [T, B, M_k] along the gate axis (one part: the whole d_gx), as big
  matmuls and never concatenated.

  Returns d_w_ih [I, G*H], d_b [G*H], d_xs [T, B, I].
  """
  inputs = w_ih.shape[0]
  flat_x = xs.reshape(-1, inputs)
  edges = [0]
  for d in parts:
    edges.append(edges[-1] + d.shape[-1])
  d_xs = _sum_arrays(d.reshape(flat_x.shape[0], -1) @ w_ih[:, lo:hi].T
                     for d, lo, hi in zip(parts, edges[:-1], edges[1:]))
  return _gram(flat_x, parts), _bias_grads(parts), d_xs.reshape(xs.shape)


def _sum_arrays(values):
  """The sum of arrays (no 0 + first, unlike the builtin `sum`)."""
  return functools.reduce(operator.add, values)


def _overwrite_step(saved, t, rows):
  """One step of a reverse scan that overwrites what it reads.

  saved: arrays [T, b, .] that the scan reads step by step; rows: this step's
  replacements [b, .], each written at step t of its array. Returns the
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
  -1 batch-major [b, 4H], 0 feature-major [4H, b]).

  Returns the gates (i, f, g, o), c_new and h_new.
  """
  i, f, g, o = jnp.split(offset + scale * jnp.tanh(z), 4, axis=axis)
  c_new = f * c + i * g
  return (i, f, g, o), c_new, o * jnp.tanh(c_new)


def _lstm_forward(w_ih, b, w_hh, xs, mask, h0, c0, unroll, chains):
  """The forward pass of a training step: batch-major, saving per step what
  the backward pass needs."""
  hidden = h0.shape[-1]
  scale = _sigmoid_scale(hidden, "ssts", xs.dtype)
  offset = jnp.where(scale == 0.5, 0.5, 0.0).astype(xs.dtype)
  w_ih_s, b_s, w_hh_s = w_ih * scale[None, :], (b * scale)[None, :], w_hh * scale[None, :]

  def body(carry, inputs):
    h, c = carry
    x_t, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    z = x_t @ w_ih_s + h @ w_hh_s + b_s                         # [b, 4H]
    gates, c_new, h_new = _lstm_update(z, c, scale[None, :], offset[None, :],
                                       axis=-1)
    y = _zero_masked(keep, h_new)
    h_new, c_new = _masked(keep, h_new, h), _masked(keep, c_new, c)
    held = () if keep is None else (h_new,)  # unmasked: the held h is y
    # Saved: the gates (one [b, 4H] array, point 9) and the state c entering
    # the step; the backward recomputes c_new and tanh(c_new) from them
    # (point 8).
    return (h_new, c_new), (y, jnp.concatenate(gates, -1), c) + held

  bounds = chain_bounds(h0.shape[0], chains)
  finals, saved = _scan_chains(body, _split((h0, c0), bounds, 0),
                               _split((xs, mask), bounds, 1),
                               reverse=False, unroll=unroll)
  ys = _join([s[0] for s in saved], 1)
  h, c = _join(finals, 0)
  return ys, h, c, saved


def _feature_major_scan(body, carries, xs, mask, unroll, chains):
  """Scans `body` over feature-major data: each chain's carries are [., b]
  and its inputs ([I, b] columns of xs, and the mask row [b]).

  carries: [B, .] arrays (transposed here); xs: [T, B, I]; mask: [T, B] or
  None. Returns the final carries [B, .] and the stacked outputs [T, B, .].
  """
  bounds = chain_bounds(carries[0].shape[0], chains)
  xs_fm = jnp.transpose(xs, (0, 2, 1))                       # [T, I, B]
  inputs = tuple(zip(_split(xs_fm, bounds, 2), _split(mask, bounds, 1)))
  finals, ys = _scan_chains(
      body, _split(tuple(a.T for a in carries), bounds, 1), inputs,
      reverse=False, unroll=unroll)
  finals = tuple(a.T for a in _join(finals, 1))
  return finals, jnp.transpose(_join(ys, 2), (0, 2, 1))


def _lstm_primal(w_ih, b, w_hh, xs, mask, h0, c0, unroll, chains):
  """The LSTM forward pass alone, feature-major (see point 7 above)."""
  hidden = h0.shape[-1]
  scale = _sigmoid_scale(hidden, "ssts", xs.dtype)[:, None]      # [4H, 1]
  offset = jnp.where(scale == 0.5, 0.5, 0.0).astype(xs.dtype)
  w_ih_t, w_hh_t, b_t = w_ih.T * scale, w_hh.T * scale, b[:, None] * scale

  def body(carry, inputs):
    h, c = carry                                                 # [H, b]
    x_t, real_t = inputs                                         # [I, b]
    keep = None if real_t is None else real_t[None, :]
    z = w_ih_t @ x_t + w_hh_t @ h + b_t                          # [4H, b]
    _, c_new, h_new = _lstm_update(z, c, scale, offset, axis=0)
    return ((_masked(keep, h_new, h), _masked(keep, c_new, c)),
            _zero_masked(keep, h_new))

  (h, c), ys = _feature_major_scan(body, (h0, c0), xs, mask, unroll, chains)
  return ys, h, c


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _lstm(w_ih, b, w_hh, xs, mask, h0, c0, unroll, chains):
  return _lstm_primal(w_ih, b, w_hh, xs, mask, h0, c0,
                      max(unroll, PRIMAL_MIN_UNROLL), chains)


def _lstm_fwd(w_ih, b, w_hh, xs, mask, h0, c0, unroll, chains):
  ys, h, c, saved = _lstm_forward(w_ih, b, w_hh, xs, mask, h0, c0, unroll,
                                  chains)
  return (ys, h, c), (w_ih, w_hh, xs, mask, h0, saved)


def _lstm_bwd(unroll, chains, residuals, cotangents):
  del unroll  # the backward scan advances one step per iteration (point 9)
  w_ih, w_hh, xs, mask, h0, saved = residuals
  d_ys, d_h, d_c = cotangents
  steps, _, hidden = d_ys.shape
  w_hh_t = w_hh.T
  bounds = chain_bounds(h0.shape[0], chains)

  def body(carry, inputs):
    # gates: step t's [b, 4H] (i, f, g, o); buffer: the saved gates
    # [T, b, 4H], overwritten with their gradients from step T - 1 down to
    # t + 1.
    dh, dc, gates, buffer = carry
    t, dy, c_prev, real_t = inputs
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    keep = None if real_t is None else real_t[:, None]
    dy = _zero_masked(keep, dy)
    tc = jnp.tanh(f * c_prev + i * g)
    dh_total = dh + dy
    dc_total = dc + dh_total * o * (1.0 - tc * tc)
    d_gates = _zero_masked(keep, jnp.concatenate([
        dc_total * g * i * (1.0 - i),
        dc_total * c_prev * f * (1.0 - f),
        dc_total * i * (1.0 - g * g),
        dh_total * tc * o * (1.0 - o)], axis=-1))              # [b, 4H]
    dh_prev = _masked(keep, d_gates @ w_hh_t, dh)
    dc_prev = _masked(keep, dc_total * f, dc)
    (buffer,), (gates,) = _overwrite_step((buffer,), t, (d_gates,))
    return (dh_prev, dc_prev, gates, buffer), None

  carries = tuple((dh, dc, gates[-1], gates)
                  for (dh, dc), (_, gates, *_) in zip(
                      _split((d_h, d_c), bounds, 0), saved))
  inputs = tuple((jnp.arange(steps), dy, c_prev, m)
                 for dy, (_, _, c_prev, *_), m in zip(
                     _split(d_ys, bounds, 1), saved, _split(mask, bounds, 1)))
  finals, _ = _scan_chains(body, carries, inputs, reverse=True, unroll=1)
  dh0, dc0 = _join([f[:2] for f in finals], 0)
  # Weight gradients chain by chain (summed), so that no chain's [T, b, 4H]
  # gate gradients are copied into a joined array.
  grads = []
  for h0_k, xs_k, (ys_k, _, _, *held), (*_, d_gx) in zip(
      _split(h0, bounds, 0), _split(xs, bounds, 1), saved, finals):
    h_prev = _previous(h0_k, held[0] if held else ys_k)      # [T, b, H]
    grads.append((_gram(h_prev.reshape(-1, hidden), (d_gx,)),)
                 + _input_grads(xs_k, w_ih, (d_gx,)))
  d_w_hh, d_w_ih, d_b = (_sum_arrays(g[k] for g in grads) for k in range(3))
  d_xs = _join([g[3] for g in grads], 1)
  return d_w_ih, d_b, d_w_hh, d_xs, None, dh0, dc0


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def lstm(w_ih: jax.Array, b: jax.Array, w_hh: jax.Array, xs: jax.Array,
         mask: jax.Array | None, h0: jax.Array, c0: jax.Array, *,
         unroll: int = 1,
         chains: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The LSTM layer of `cells.lstm` over time-major inputs.

  Args:
    w_ih: [I, 4H]; b: [4H]; w_hh: [H, 4H]; xs: [T, B, I]; mask: [T, B] bool
    or None; h0, c0: [B, H]; unroll: steps per scan iteration (at least
    PRIMAL_MIN_UNROLL when the pass is not differentiated); chains: batch
    chains.
  Returns:
    ys [T, B, H] (zero where masked), final h [B, H], final c [B, H].
  """
  return _lstm(w_ih, b, w_hh, xs, mask, h0, c0, unroll, chains)


# ----------------------------------------------------------------------------
# GRU, reset_after form (gates r, z, n):
#   r = sigmoid(x_r + h W_r + b_r), z = sigmoid(x_z + h W_z + b_z)
#   n = tanh(x_n + r * (h W_n + b_n)), h' = (1 - z) n + z h

def _gru_update(gx, gh, h, axis: int):
  """One GRU step from the scaled projections gx = x W_ih + b_ih and
  gh = h W_hh + b_hh (gates along `axis`: -1 batch-major [b, 3H], 0
  feature-major [3H, b]).

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


def _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, unroll, chains):
  """The forward pass of a training step (as `_lstm_forward`)."""
  hidden = h0.shape[-1]
  scale = _sigmoid_scale(hidden, "sst", xs.dtype)
  w_ih_s, b_ih_s = w_ih * scale[None, :], (b_ih * scale)[None, :]
  w_hh_s, b_hh_s = w_hh * scale[None, :], (b_hh * scale)[None, :]

  def body(h, inputs):
    x_t, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    rz, n, h_n, h_new = _gru_update(x_t @ w_ih_s + b_ih_s,      # [b, 3H]
                                    h @ w_hh_s + b_hh_s, h, axis=-1)
    y = _zero_masked(keep, h_new)
    h_new = _masked(keep, h_new, h)
    held = () if keep is None else (h_new,)  # unmasked: the held h is y
    return h_new, (y, rz, n, h_n) + held

  bounds = chain_bounds(h0.shape[0], chains)
  finals, saved = _scan_chains(body, _split(h0, bounds, 0),
                               _split((xs, mask), bounds, 1),
                               reverse=False, unroll=unroll)
  ys = _join([s[0] for s in saved], 1)
  return ys, _join(finals, 0), saved


def _gru_primal(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, unroll, chains):
  """The GRU forward pass alone, feature-major (see point 7 above)."""
  hidden = h0.shape[-1]
  scale = _sigmoid_scale(hidden, "sst", xs.dtype)[:, None]       # [3H, 1]
  w_ih_t, b_ih_t = w_ih.T * scale, b_ih[:, None] * scale
  w_hh_t, b_hh_t = w_hh.T * scale, b_hh[:, None] * scale

  def body(carry, inputs):
    (h,) = carry                                                 # [H, b]
    x_t, real_t = inputs                                         # [I, b]
    keep = None if real_t is None else real_t[None, :]
    *_, h_new = _gru_update(w_ih_t @ x_t + b_ih_t,               # [3H, b]
                            w_hh_t @ h + b_hh_t, h, axis=0)
    return (_masked(keep, h_new, h),), _zero_masked(keep, h_new)

  (h,), ys = _feature_major_scan(body, (h0,), xs, mask, unroll, chains)
  return ys, h


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _gru(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, unroll, chains):
  return _gru_primal(w_ih, b_ih, w_hh, b_hh, xs, mask, h0,
                     max(unroll, PRIMAL_MIN_UNROLL), chains)


def _gru_fwd(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, unroll, chains):
  ys, h, saved = _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, unroll,
                              chains)
  return (ys, h), (w_ih, w_hh, xs, mask, h0, saved)


def _gru_bwd(unroll, chains, residuals, cotangents):
  del unroll  # the backward scan advances one step per iteration (point 9)
  w_ih, w_hh, xs, mask, h0, saved = residuals
  d_ys, d_h = cotangents
  steps, _, hidden = d_ys.shape
  w_hh_t = w_hh.T
  bounds = chain_bounds(h0.shape[0], chains)

  def body(carry, inputs):
    # row: step t's saved (rz, n, h_n); buffers: the saved [T, b, .] arrays,
    # overwritten from step T - 1 down to t + 1 with (d_rz, d_an, d_an * r):
    # d_gx = [d_rz, d_an] and d_gh = [d_rz, d_an * r].
    dh, (rz, n, h_n), buffers = carry
    t, dy, h_prev, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    r, z = rz[:, :hidden], rz[:, hidden:]
    d_total = dh + _zero_masked(keep, dy)
    d_an = d_total * (1.0 - z) * (1.0 - n * n)
    d_ar = d_an * h_n * r * (1.0 - r)
    d_az = d_total * (h_prev - n) * z * (1.0 - z)
    d_rz, d_an, d_an_r = (_zero_masked(keep, d) for d in (
        jnp.concatenate([d_ar, d_az], -1), d_an, d_an * r))
    dh_prev = _masked(keep, d_total * z + jnp.concatenate([d_rz, d_an_r], -1)
                      @ w_hh_t, dh)
    buffers, row = _overwrite_step(buffers, t, (d_rz, d_an, d_an_r))
    return (dh_prev, row, buffers), None

  # h_prev[t] is the state entering step t: the previous step's held state.
  h_prevs = [_previous(h0_k, held[0] if held else ys_k)
             for h0_k, (ys_k, _, _, _, *held) in zip(_split(h0, bounds, 0),
                                                     saved)]
  carries = tuple((dh, tuple(a[-1] for a in arrays), arrays)
                  for dh, arrays in zip(_split(d_h, bounds, 0),
                                        (tuple(s[1:4]) for s in saved)))
  inputs = tuple((jnp.arange(steps), dy, hp, m) for dy, hp, m in zip(
      _split(d_ys, bounds, 1), h_prevs, _split(mask, bounds, 1)))
  finals, _ = _scan_chains(body, carries, inputs, reverse=True, unroll=1)
  # Weight gradients chain by chain (summed), as in _lstm_bwd.
  grads = []
  for h_prev, xs_k, (_, _, (d_rz, d_an, d_an_r)) in zip(
      h_prevs, _split(xs, bounds, 1), finals):                # [T, b, .]
    grads.append(
        (_gram(h_prev.reshape(-1, hidden), (d_rz, d_an_r)),
         _bias_grads((d_rz, d_an_r)))
        + _input_grads(xs_k, w_ih, (d_rz, d_an)))
  d_w_hh, d_b_hh, d_w_ih, d_b_ih = (_sum_arrays(g[k] for g in grads)
                                    for k in range(4))
  d_xs = _join([g[4] for g in grads], 1)
  return (d_w_ih, d_b_ih, d_w_hh, d_b_hh, d_xs, None,
          _join([f[0] for f in finals], 0))


_gru.defvjp(_gru_fwd, _gru_bwd)


def gru(w_ih: jax.Array, b_ih: jax.Array, w_hh: jax.Array, b_hh: jax.Array,
        xs: jax.Array, mask: jax.Array | None, h0: jax.Array, *,
        unroll: int = 1, chains: int = 1) -> tuple[jax.Array, jax.Array]:
  """The GRU (reset_after) layer of `cells.gru` over time-major inputs.

  Args:
    w_ih: [I, 3H]; b_ih: [3H]; w_hh: [H, 3H]; b_hh: [3H]; xs: [T, B, I];
    mask: [T, B] bool or None; h0: [B, H]; unroll: steps per scan iteration
    (at least PRIMAL_MIN_UNROLL when the pass is not differentiated); chains:
    batch chains.
  Returns:
    ys [T, B, H] (zero where masked) and the final h [B, H].
  """
  return _gru(w_ih, b_ih, w_hh, b_hh, xs, mask, h0, unroll, chains)
