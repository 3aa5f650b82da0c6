"""The LSTM through NVIDIA's cuDNN kernel (`jax.experimental.rnn.lstm`) on GPUs.

B = batch, T = time, I = input features, H = hidden units.

cuDNN runs a whole LSTM layer, forward and backward through time, as one
library call, as PyTorch's `nn.LSTM` does on a GPU; a `lax.scan` launches
several small kernels per time step instead. `cells.lstm()` attaches this
path as `Cell.cudnn`, and `models.unroll.rnn` takes it on request
(`implementation='cudnn'`, float32 on a GPU): for numerics as PyTorch's GPU
LSTM gets them. It is not the default because the fused `lax.scan` of
`models.fused` is faster on a GPU too and needs far less memory for a
training step (docs/performance.md).

Our parameters map onto cuDNN's packed weight vector without loss: the gate
order is the same (i, f, g, o), cuDNN's W_ih [4H, I] and W_hh [4H, H] are our
w_ih [I, 4H] and w_hh [H, 4H] transposed, and of cuDNN's two biases b_ih
carries our b and b_hh is a constant zero (the two always appear summed).
Gradients flow back through that packing to w_ih, w_hh and b.

The kernel's matmul precision follows JAX's `jax_default_matmul_precision`
(unset: TF32 allowed, as for JAX's own float32 matmuls on a GPU; 'highest':
full float32).

This module keeps `models.unroll`'s lengths semantics exactly: cuDNN needs
every sequence to have at least one step, so lengths of 0 run one step whose
results are discarded (output zero, final state = initial state); outputs
on padding are zeroed whatever the kernel writes there.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

# As `models.cells.Params` (which imports this module).
Params = dict[str, jax.Array]


def gpu_backend() -> bool:
  """True when JAX's default backend is a GPU (where the kernel exists)."""
  return jax.default_backend() == "gpu"


def pack_lstm_weights(params: Params) -> jax.Array:
  """Our LSTM params -> cuDNN's flat weight vector [4H*I + 4H*H + 8H].

  Layout (see `jax.experimental.rnn`): W_ih [4H, I], W_hh [4H, H], b_ih [4H],
  b_hh [4H], each flattened row-major, in that order.
  """
  w_ih, w_hh, b = (params[k].astype(jnp.float32) for k in ("w_ih", "w_hh", "b"))
  return jnp.concatenate([w_ih.T.reshape(-1), w_hh.T.reshape(-1),
                          b.reshape(-1), jnp.zeros_like(b).reshape(-1)])


def _cudnn_kernel(xs, h0, c0, weights, seq_lengths, *, input_size, hidden):
  from jax.experimental import rnn as jax_rnn  # pylint: disable=g-import-not-at-top
  return jax_rnn.lstm(xs, h0, c0, weights, seq_lengths, input_size=input_size,
                      hidden_size=hidden, num_layers=1, dropout=0.0,
                      bidirectional=False)


def lstm(params: Params, xs: jax.Array, lengths: jax.Array | None,
         h0: jax.Array, c0: jax.Array,
         kernel: Callable[..., tuple[jax.Array, jax.Array, jax.Array]] | None = None
         ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One forward LSTM layer through the cuDNN kernel.

  Args:
    params: w_ih [I, 4H], w_hh [H, 4H], b [4H] (float32).
    xs: [B, T, I] batch-major inputs, T >= 1.
    lengths: optional [B] int in [0, T]; None means T for every sequence.
    h0, c0: [B, H] initial state.
    kernel: None for the cuDNN call; tests pass JAX's reference
      implementation (`jax.experimental.rnn.lstm_ref`, any backend), called
      as kernel(xs, h0 [1, B, H], c0 [1, B, H], weights, seq_lengths [B],
      input_size=I, hidden=H) -> (ys, h_n [1, B, H], c_n [1, B, H]).

  Returns:
    ys [B, T, H] (zero on padding), h [B, H] and c [B, H] after each
    sequence's last real step (h0, c0 where the length is 0).
  """
  batch, max_len, input_size = xs.shape
  hidden = params["w_hh"].shape[0]
  xs, h0, c0 = (a.astype(jnp.float32) for a in (xs, h0, c0))
  if lengths is None:
    seq_lengths = jnp.full((batch,), max_len, jnp.int32)
  else:
    seq_lengths = jnp.clip(lengths.astype(jnp.int32), 1, max_len)
  kernel = kernel or _cudnn_kernel
  ys, h_n, c_n = kernel(xs, h0[None], c0[None], pack_lstm_weights(params),
                        seq_lengths, input_size=input_size, hidden=hidden)
  h, c = h_n[0], c_n[0]
  if lengths is not None:
    real = jnp.arange(max_len)[None, :] < lengths[:, None]   # [B, T]
    ys = jnp.where(real[:, :, None], ys, jnp.zeros_like(ys))
    empty = (lengths <= 0)[:, None]                          # [B, 1]
    h = jnp.where(empty, h0, h)
    c = jnp.where(empty, c0, c)
  return ys, h, c
