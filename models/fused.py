"""Hand-differentiated LSTM and GRU recurrences: the fast path of `unroll.rnn`.

Both compute exactly the recurrences of `models.cells` (tests compare values
and gradients with autodiff through the generic scan). Three things make them
faster than autodiff through a scan of `cell.step`:

1. A custom VJP for the whole sequence. Autodiff accumulates dW_hh as one
   [H, G*H] outer product per step inside the backward loop; here the
   backward scan computes only the gate gradients dG_t and dG_t @ W_hh^T, and
   dW_hh (and db_hh) are formed after the loop as one [H, T*B] x [T*B, G*H]
   matmul. dW_ih, db_ih and dx follow from autodiff of the hoisted input
   projection, also single large matmuls.
2. One tanh for the sigmoid gates: sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, with
   the 1/2 folded into the gate columns of gx and W_hh before the loop.
3. Batch chains. The batch is split into `chains` independent slices that the
   same scan iteration advances side by side. They share no data, so XLA's CPU
   runtime executes their matmuls and gate fusions concurrently on different
   cores; a [32, 256] x [256, 1024] matmul alone does not use two cores well.
   On accelerators one chain is best (one big matmul per step).

Shapes: T = time, B = batch, H = hidden, G = gates (4 LSTM, 3 GRU). Inputs are
time-major: gx [T, B, G*H] (= x W_ih + b_ih), mask [T, B] bool or None.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

# ----------------------------------------------------------------------------
# Batch chains.

MIN_CHAIN_ROWS = 8  # below this, a chain's matmul is too small to be worth it


def auto_chains(batch: int) -> int:
  """The default number of chains for a batch: one per CPU core on the CPU
  backend (at most 4, each with >= MIN_CHAIN_ROWS rows), 1 elsewhere."""
  if jax.default_backend() != "cpu":
    return 1
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
      os.cpu_count() or 1)
  return max(1, min(cores, 4, batch // MIN_CHAIN_ROWS))


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
# LSTM: gates i, f, g, o; c' = f c + i g; h' = o tanh(c').

def _lstm_forward(w_hh, gx, mask, h0, c0, unroll, chains):
  hidden = h0.shape[-1]
  scale = _sigmoid_scale(hidden, "ssts", gx.dtype)
  offset = jnp.where(scale == 0.5, 0.5, 0.0).astype(gx.dtype)
  w_scaled = w_hh * scale[None, :]

  def body(carry, inputs):
    h, c = carry
    gx_t, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    acts = offset[None, :] + scale[None, :] * jnp.tanh(gx_t + h @ w_scaled)
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    c_new = f * c + i * g
    tanh_c = jnp.tanh(c_new)
    h_new = o * tanh_c
    y = _zero_masked(keep, h_new)
    h_new, c_new = _masked(keep, h_new, h), _masked(keep, c_new, c)
    held = () if keep is None else (h_new,)  # unmasked: the held h is y
    return (h_new, c_new), (y, acts, tanh_c, c_new) + held

  bounds = chain_bounds(h0.shape[0], chains)
  xs = _split((gx * scale[None, None, :], mask), bounds, 1)
  finals, saved = _scan_chains(body, _split((h0, c0), bounds, 0), xs,
                               reverse=False, unroll=unroll)
  ys = _join([s[0] for s in saved], 1)
  h, c = _join(finals, 0)
  return ys, h, c, saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _lstm(w_hh, gx, mask, h0, c0, unroll, chains):
  ys, h, c, _ = _lstm_forward(w_hh, gx, mask, h0, c0, unroll, chains)
  return ys, h, c


def _lstm_fwd(w_hh, gx, mask, h0, c0, unroll, chains):
  ys, h, c, saved = _lstm_forward(w_hh, gx, mask, h0, c0, unroll, chains)
  return (ys, h, c), (w_hh, mask, h0, c0, saved)


def _lstm_bwd(unroll, chains, residuals, cotangents):
  w_hh, mask, h0, c0, saved = residuals
  d_ys, d_h, d_c = cotangents
  hidden = h0.shape[-1]
  w_hh_t = w_hh.T
  bounds = chain_bounds(h0.shape[0], chains)

  def body(carry, inputs):
    dh, dc = carry
    dy, act, tc, c_prev, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    dy = _zero_masked(keep, dy)
    i, f, g, o = jnp.split(act, 4, axis=-1)
    dh_total = dh + dy
    dc_total = dc + dh_total * o * (1.0 - tc * tc)
    d_gates = jnp.concatenate([
        dc_total * g * i * (1.0 - i),
        dc_total * c_prev * f * (1.0 - f),
        dc_total * i * (1.0 - g * g),
        dh_total * tc * o * (1.0 - o)], axis=-1)              # [b, 4H]
    dh_prev = _masked(keep, d_gates @ w_hh_t, dh)
    dc_prev = _masked(keep, dc_total * f, dc)
    return (dh_prev, dc_prev), _zero_masked(keep, d_gates)

  c0s = _split(c0, bounds, 0)
  xs = tuple((dy, acts, tanh_c, _previous(c0_k, cs), m)
             for dy, (_, acts, tanh_c, cs, *_), c0_k, m in zip(
                 _split(d_ys, bounds, 1), saved, c0s, _split(mask, bounds, 1)))
  d_finals, d_gx = _scan_chains(body, _split((d_h, d_c), bounds, 0), xs,
                                reverse=True, unroll=unroll)
  dh0, dc0 = _join(d_finals, 0)
  h_prev = _join([_previous(h0_k, held[0] if held else ys_k)
                  for h0_k, (ys_k, _, _, _, *held) in zip(
                      _split(h0, bounds, 0), saved)], 1)
  d_gx = _join(d_gx, 1)                                      # [T, B, 4H]
  d_w_hh = h_prev.reshape(-1, hidden).T @ d_gx.reshape(-1, 4 * hidden)
  return d_w_hh, d_gx, None, dh0, dc0


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def lstm(w_hh: jax.Array, gx: jax.Array, mask: jax.Array | None,
         h0: jax.Array, c0: jax.Array, *, unroll: int = 1,
         chains: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The LSTM recurrence over precomputed input gates.

  Args:
    w_hh: [H, 4H]; gx: [T, B, 4H] = x W_ih + b; mask: [T, B] bool or None;
    h0, c0: [B, H]; unroll: steps per scan iteration; chains: batch chains.
  Returns:
    ys [T, B, H] (zero where masked), final h [B, H], final c [B, H].
  """
  return _lstm(w_hh, gx, mask, h0, c0, unroll, chains)


# ----------------------------------------------------------------------------
# GRU, reset_after form (gates r, z, n):
#   r = sigmoid(x_r + h W_r + b_r), z = sigmoid(x_z + h W_z + b_z)
#   n = tanh(x_n + r * (h W_n + b_n)), h' = (1 - z) n + z h

def _gru_forward(w_hh, b_hh, gx, mask, h0, unroll, chains):
  hidden = h0.shape[-1]
  scale = _sigmoid_scale(hidden, "sst", gx.dtype)
  w_scaled, b_scaled = w_hh * scale[None, :], (b_hh * scale)[None, :]

  def body(h, inputs):
    gx_t, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    gh = h @ w_scaled + b_scaled                              # [b, 3H]
    rz = 0.5 * jnp.tanh(gx_t[:, :2 * hidden] + gh[:, :2 * hidden]) + 0.5
    r, z = rz[:, :hidden], rz[:, hidden:]
    h_n = gh[:, 2 * hidden:]
    n = jnp.tanh(gx_t[:, 2 * hidden:] + r * h_n)
    h_new = n + z * (h - n)
    y = _zero_masked(keep, h_new)
    h_new = _masked(keep, h_new, h)
    held = () if keep is None else (h_new,)  # unmasked: the held h is y
    return h_new, (y, rz, n, h_n) + held

  bounds = chain_bounds(h0.shape[0], chains)
  xs = _split((gx * scale[None, None, :], mask), bounds, 1)
  finals, saved = _scan_chains(body, _split(h0, bounds, 0), xs,
                               reverse=False, unroll=unroll)
  ys = _join([s[0] for s in saved], 1)
  return ys, _join(finals, 0), saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _gru(w_hh, b_hh, gx, mask, h0, unroll, chains):
  ys, h, _ = _gru_forward(w_hh, b_hh, gx, mask, h0, unroll, chains)
  return ys, h


def _gru_fwd(w_hh, b_hh, gx, mask, h0, unroll, chains):
  ys, h, saved = _gru_forward(w_hh, b_hh, gx, mask, h0, unroll, chains)
  return (ys, h), (w_hh, mask, h0, saved)


def _gru_bwd(unroll, chains, residuals, cotangents):
  w_hh, mask, h0, saved = residuals
  d_ys, d_h = cotangents
  hidden = h0.shape[-1]
  w_hh_t = w_hh.T
  bounds = chain_bounds(h0.shape[0], chains)

  def body(dh, inputs):
    dy, rz, n, h_n, h_prev, real_t = inputs
    keep = None if real_t is None else real_t[:, None]
    r, z = rz[:, :hidden], rz[:, hidden:]
    d_total = dh + _zero_masked(keep, dy)
    d_an = d_total * (1.0 - z) * (1.0 - n * n)
    d_ar = d_an * h_n * r * (1.0 - r)
    d_az = d_total * (h_prev - n) * z * (1.0 - z)
    d_gh = _zero_masked(keep, jnp.concatenate([d_ar, d_az, d_an * r], -1))
    d_gx = _zero_masked(keep, jnp.concatenate([d_ar, d_az, d_an], -1))
    dh_prev = _masked(keep, d_total * z + d_gh @ w_hh_t, dh)
    return dh_prev, (d_gx, d_gh)

  # h_prev[t] is the state entering step t: the previous step's held state.
  h_prevs = [_previous(h0_k, held[0] if held else ys_k)
             for h0_k, (ys_k, _, _, _, *held) in zip(_split(h0, bounds, 0),
                                                     saved)]
  xs = tuple((dy, rz, n, h_n, hp, m) for dy, (_, rz, n, h_n, *_), hp, m in zip(
      _split(d_ys, bounds, 1), saved, h_prevs, _split(mask, bounds, 1)))
  d_finals, grads = _scan_chains(body, _split(d_h, bounds, 0), xs,
                                 reverse=True, unroll=unroll)
  d_gx = _join([g[0] for g in grads], 1)                     # [T, B, 3H]
  d_gh = _join([g[1] for g in grads], 1)
  h_prev = _join(h_prevs, 1)
  d_w_hh = h_prev.reshape(-1, hidden).T @ d_gh.reshape(-1, 3 * hidden)
  d_b_hh = jnp.sum(d_gh, axis=(0, 1))
  return d_w_hh, d_b_hh, d_gx, None, _join(d_finals, 0)


_gru.defvjp(_gru_fwd, _gru_bwd)


def gru(w_hh: jax.Array, b_hh: jax.Array, gx: jax.Array,
        mask: jax.Array | None, h0: jax.Array, *, unroll: int = 1,
        chains: int = 1) -> tuple[jax.Array, jax.Array]:
  """The GRU (reset_after) recurrence over precomputed input gates.

  Args:
    w_hh: [H, 3H]; b_hh: [3H]; gx: [T, B, 3H] = x W_ih + b_ih; mask: [T, B]
    bool or None; h0: [B, H]; unroll: steps per scan iteration; chains: batch
    chains.
  Returns:
    ys [T, B, H] (zero where masked) and the final h [B, H].
  """
  return _gru(w_hh, b_hh, gx, mask, h0, unroll, chains)
