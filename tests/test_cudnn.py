"""The cuDNN LSTM path (`models.cudnn`, `unroll.rnn(implementation='cudnn')`).

On any backend: the weight packing is checked against JAX's own reading of
cuDNN's layout (`jax.experimental.rnn.unpack_lstm_weights` + `lstm_ref`),
and the wrapper's semantics (lengths including 0, reverse, initial state,
gradients) with `lstm_ref` standing in for the kernel. On a GPU the real
kernel is checked against the fused scan, values and gradients.
"""

import jax
from jax.experimental import rnn as jax_rnn
import jax.numpy as jnp
import numpy as np
import pytest

from models import cells, cudnn, unroll
from tests.test_cells_unroll import (B, H, I, LENGTHS, T, _assert_trees_close,
                                     _python_loop, _random_params)

on_gpu = pytest.mark.skipif(not cudnn.gpu_backend(),
                            reason="the cuDNN kernel needs a GPU")


def _reference_kernel(xs, h0, c0, weights, seq_lengths, *, input_size, hidden):
  """`jax.experimental.rnn.lstm_ref` behind the cuDNN call's signature."""
  w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(
      weights, input_size, hidden, 1, False)
  return jax_rnn.lstm_ref(xs, h0, c0, w_ih, w_hh, b_ih, b_hh, seq_lengths,
                          input_size, hidden, 1, 0.0, False)


@pytest.fixture
def reference_gpu(monkeypatch):
  """Makes `unroll.rnn` believe it is on a GPU, with lstm_ref as cuDNN."""
  monkeypatch.setattr(cudnn, "gpu_backend", lambda: True)
  monkeypatch.setattr(cudnn, "_cudnn_kernel", _reference_kernel)


def _state(key, batch=B, hidden=H):
  k1, k2 = jax.random.split(key)
  return cells.LSTMState(jax.random.normal(k1, (batch, hidden)),
                         jax.random.normal(k2, (batch, hidden)))


def test_packed_weights_follow_cudnn_layout():
  """JAX's reference reading of the packed vector = our LSTM, step by step."""
  cell = cells.lstm()
  params = _random_params(cell, jax.random.PRNGKey(0))
  xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
  init = _state(jax.random.PRNGKey(2))
  weights = cudnn.pack_lstm_weights(params)
  assert weights.shape == (jax_rnn.get_num_params_in_lstm(I, H, 1, False),)
  ys, h_n, c_n = _reference_kernel(xs, init.h[None], init.c[None], weights,
                                   jnp.full((B,), T, jnp.int32),
                                   input_size=I, hidden=H)
  want_ys, want = _python_loop(cell, params, xs, [T] * B, state=init)
  _assert_trees_close((ys, h_n[0], c_n[0]), (want_ys, want.h, want.c))


def _loss_and_grads(implementation, params, xs, init, lengths, reverse):
  def loss(params, xs, init):
    ys, final = unroll.rnn(cells.lstm(), params, xs, lengths, reverse=reverse,
                           initial_state=init, implementation=implementation)
    weights = jnp.arange(1, ys.size + 1, dtype=ys.dtype).reshape(ys.shape)
    return (jnp.sum(weights * ys) / ys.size + jnp.sum(final.h * final.c),
            (ys, final))
  (_, (ys, final)), grads = jax.value_and_grad(
      loss, argnums=(0, 1, 2), has_aux=True)(params, xs, init)
  return ys, final, grads


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_cudnn_path_equals_fused_with_reference_kernel(reference_gpu, reverse,
                                                       with_lengths):
  """Lengths (one of them 0), reverse, initial state: values and gradients."""
  del reference_gpu
  params = _random_params(cells.lstm(), jax.random.PRNGKey(3))
  xs = jax.random.normal(jax.random.PRNGKey(4), (B, T, I))
  init = _state(jax.random.PRNGKey(5))
  lengths = jnp.asarray(LENGTHS) if with_lengths else None
  got = _loss_and_grads("cudnn", params, xs, init, lengths, reverse)
  want = _loss_and_grads("fused", params, xs, init, lengths, reverse)
  _assert_trees_close(got, want, atol=2e-5, rtol=2e-5)
  if with_lengths:  # the zero-length sequence: zero outputs, state unchanged
    ys, final, _ = got
    assert not np.any(np.asarray(ys[2]))
    np.testing.assert_array_equal(final.h[2], init.h[2])


def test_auto_never_takes_cudnn(monkeypatch):
  """'auto' is the fused scan, on a GPU too (faster there, see
  docs/performance.md)."""
  calls = []

  def recording_kernel(*args, **kwargs):
    calls.append(kwargs)
    return _reference_kernel(*args, **kwargs)
  monkeypatch.setattr(cudnn, "_cudnn_kernel", recording_kernel)
  monkeypatch.setattr(cudnn, "gpu_backend", lambda: True)
  lstm = cells.lstm()
  params = lstm.init(jax.random.PRNGKey(0), I, H)
  xs = jnp.ones((B, T, I))
  unroll.rnn(lstm, params, xs)
  unroll.stacked(lstm, [params], xs)
  assert not calls
  unroll.stacked(lstm, [params], xs, implementation="cudnn")
  assert calls == [{"input_size": I, "hidden": H}]


def test_cudnn_path_casts_mixed_inputs_to_float32(reference_gpu):
  """bfloat16 inputs with float32 params: a float32 LSTM, as with 'fused'."""
  del reference_gpu
  params = _random_params(cells.lstm(), jax.random.PRNGKey(11))
  xs = jax.random.normal(jax.random.PRNGKey(12), (B, T, I)).astype(jnp.bfloat16)
  got, _ = unroll.rnn(cells.lstm(), params, xs, implementation="cudnn")
  want, _ = unroll.rnn(cells.lstm(), params, xs, implementation="fused")
  assert got.dtype == want.dtype == jnp.float32
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)


def test_cudnn_requests_that_cannot_run_are_errors(monkeypatch):
  lstm = cells.lstm()
  params = lstm.init(jax.random.PRNGKey(0), I, H)
  xs = jnp.ones((B, T, I))
  if not cudnn.gpu_backend():  # the real backend: not patched yet
    with pytest.raises(ValueError, match="'cudnn' needs a GPU backend; JAX's "
                       "default backend is 'cpu'"):
      unroll.rnn(lstm, params, xs, implementation="cudnn")
  monkeypatch.setattr(cudnn, "gpu_backend", lambda: True)
  gru = cells.gru()
  with pytest.raises(ValueError, match=r"runs a float32 cell with a cuDNN "
                     r"kernel .* got cell 'gru' \(Cell.cudnn None\)"):
    unroll.rnn(gru, gru.init(jax.random.PRNGKey(0), I, H), xs,
               implementation="cudnn")
  with pytest.raises(ValueError, match=r"dtype bfloat16, \[B, T\] = \[4, 7\]"):
    unroll.rnn(lstm, jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16),
                                            params),
               xs.astype(jnp.bfloat16), implementation="cudnn")
  with pytest.raises(ValueError, match=r"\[B, T\] = \[4, 0\]"):
    unroll.rnn(lstm, params, jnp.ones((B, 0, I)), implementation="cudnn")
  elman = cells.elman()
  with pytest.raises(ValueError, match="'fused' needs a cell with a fused "
                     "recurrence .* cell 'rnn_tanh' has none"):
    unroll.rnn(elman, elman.init(jax.random.PRNGKey(0), I, H), xs,
               implementation="fused")


# ----------------------------------------------------------------------------
# The real kernel (GPU only).

@on_gpu
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_cudnn_kernel_equals_fused_on_gpu(reverse, with_lengths):
  params = _random_params(cells.lstm(), jax.random.PRNGKey(6))
  xs = jax.random.normal(jax.random.PRNGKey(7), (B, T, I))
  init = _state(jax.random.PRNGKey(8))
  lengths = jnp.asarray(LENGTHS) if with_lengths else None
  with jax.default_matmul_precision("highest"):
    got = _loss_and_grads("cudnn", params, xs, init, lengths, reverse)
    want = _loss_and_grads("fused", params, xs, init, lengths, reverse)
  _assert_trees_close(got, want, atol=1e-4, rtol=1e-4)


@on_gpu
def test_cudnn_kernel_in_bidirectional_stack_on_gpu():
  """A 2-layer bidirectional stack at a realistic size: cuDNN against the
  fused scan, values and gradients."""
  lstm = cells.lstm()
  keys = jax.random.split(jax.random.PRNGKey(9), 4)
  layers = [{"forward": lstm.init(keys[0], 32, 64),
             "backward": lstm.init(keys[1], 32, 64)},
            {"forward": lstm.init(keys[2], 128, 64),
             "backward": lstm.init(keys[3], 128, 64)}]
  xs = jax.random.normal(jax.random.PRNGKey(10), (16, 50, 32))
  lengths = jnp.arange(16) * 3 + 5

  def loss(layers, implementation):
    ys, _ = unroll.stacked(lstm, layers, xs, lengths, bidirectional=True,
                           implementation=implementation)
    return jnp.mean(ys ** 2)
  with jax.default_matmul_precision("highest"):
    got = jax.value_and_grad(loss)(layers, "cudnn")
    want = jax.value_and_grad(loss)(layers, "fused")
  _assert_trees_close(got, want, atol=1e-5, rtol=1e-3)
