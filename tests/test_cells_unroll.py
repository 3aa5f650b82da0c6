"""Cells and the scan: against a Python loop, finite differences, Flax's cells."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from models import cells, unroll
from tests import numerics

B, T, I, H = 4, 7, 5, 6
LENGTHS = np.array([7, 3, 0, 5], np.int32)

CELLS = {
    "rnn_tanh": lambda: cells.elman("tanh"),
    "rnn_relu": lambda: cells.elman("relu"),
    "lstm": lambda: cells.lstm(),
    "gru": lambda: cells.gru(reset_after=True),
    "gru_original": lambda: cells.gru(reset_after=False),
}


def _random_params(cell, key, input_size=I, hidden=H, dtype=jnp.float32):
  """Cell params with every entry random (biases too), so no term hides."""
  params = cell.init(key, input_size, hidden, dtype)
  keys = jax.random.split(jax.random.fold_in(key, 7), len(params))
  return {name: value + 0.3 * jax.random.normal(k, value.shape, dtype)
          for k, (name, value) in zip(keys, sorted(params.items()))}


def _inputs(key, batch=B, steps=T, features=I):
  return jax.random.normal(key, (batch, steps, features), jnp.float32)


def _python_loop(cell, params, xs, lengths, reverse=False, state=None):
  """Reference: each sequence alone, step by step, no masking tricks."""
  ys = np.zeros(xs.shape[:2] + (params["w_hh"].shape[0],), np.float32)
  finals = []
  for b in range(xs.shape[0]):
    s = cell.initial_state(1, params["w_hh"].shape[0]) if state is None else \
        jax.tree_util.tree_map(lambda a: a[b:b + 1], state)
    order = range(lengths[b])
    if reverse:
      order = reversed(order)
    for t in order:
      gx_t = cell.project(params, xs[b:b + 1, t])
      s, y = cell.step(params, s, gx_t)
      ys[b, t] = np.asarray(y[0])
    finals.append(s)
  final = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *finals)
  return ys, final


def _assert_trees_close(a, b, atol=1e-5, rtol=1e-5):
  jax.tree_util.tree_map(
      lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y),
                                              atol=atol, rtol=rtol), a, b)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("unroll_steps", [1, 3])
def test_scan_matches_python_loop(name, reverse, unroll_steps):
  # Undifferentiated: LSTM and GRU take models.fused's feature-major forward
  # pass.
  cell = CELLS[name]()
  params = _random_params(cell, jax.random.PRNGKey(0))
  xs = _inputs(jax.random.PRNGKey(1))
  ys, final = unroll.rnn(cell, params, xs, jnp.asarray(LENGTHS),
                         reverse=reverse, unroll=unroll_steps)
  want_ys, want_final = _python_loop(cell, params, xs, LENGTHS, reverse)
  assert ys.shape == (B, T, H) and ys.dtype == jnp.float32
  np.testing.assert_allclose(ys, want_ys, atol=1e-5, rtol=1e-5)
  _assert_trees_close(final, want_final)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_no_lengths_means_full_length(name):
  cell = CELLS[name]()
  params = _random_params(cell, jax.random.PRNGKey(2))
  xs = _inputs(jax.random.PRNGKey(3))
  full = jnp.full((B,), T, jnp.int32)
  for reverse in (False, True):
    a = unroll.rnn(cell, params, xs, reverse=reverse)
    b = unroll.rnn(cell, params, xs, full, reverse=reverse)
    _assert_trees_close(a, b, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_initial_state_is_used_and_held_for_zero_length(name):
  cell = CELLS[name]()
  params = _random_params(cell, jax.random.PRNGKey(4))
  xs = _inputs(jax.random.PRNGKey(5))
  init = jax.tree_util.tree_map(
      lambda z: jax.random.normal(jax.random.PRNGKey(6), z.shape),
      cell.initial_state(B, H))
  ys, final = unroll.rnn(cell, params, xs, jnp.asarray(LENGTHS),
                         initial_state=init)
  want_ys, want_final = _python_loop(cell, params, xs, LENGTHS, state=init)
  np.testing.assert_allclose(ys, want_ys, atol=1e-5)
  _assert_trees_close(final, want_final)
  zero = int(np.where(LENGTHS == 0)[0][0])
  np.testing.assert_array_equal(ys[zero], 0.0)
  _assert_trees_close(jax.tree_util.tree_map(lambda a: a[zero], final),
                      jax.tree_util.tree_map(lambda a: a[zero], init), atol=0)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("mode", ["forward", "reverse", "bidirectional"])
def test_padding_invariance(name, mode):
  """A padded batch gives what each sequence gives alone, unpadded."""
  cell = CELLS[name]()
  params = _random_params(cell, jax.random.PRNGKey(8))
  if mode == "bidirectional":
    params = {"forward": params,
              "backward": _random_params(cell, jax.random.PRNGKey(9))}
  # Padding is filled with garbage: it must not leak into anything.
  xs = _inputs(jax.random.PRNGKey(10)) * 50.0

  def run(x, lengths):
    if mode == "bidirectional":
      return unroll.bidirectional(cell, params, x, lengths)
    return unroll.rnn(cell, params, x, lengths, reverse=(mode == "reverse"))

  ys, finals = run(xs, jnp.asarray(LENGTHS))
  for b, length in enumerate(LENGTHS):
    if length == 0:
      continue
    alone_ys, alone_final = run(xs[b:b + 1, :length], None)
    np.testing.assert_allclose(ys[b, :length], alone_ys[0], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(ys[b, length:], 0.0)
    _assert_trees_close(jax.tree_util.tree_map(lambda a: a[b:b + 1], finals),
                        alone_final)


def test_bidirectional_merges_and_final_states():
  cell = cells.lstm()
  params = {"forward": _random_params(cell, jax.random.PRNGKey(11)),
            "backward": _random_params(cell, jax.random.PRNGKey(12))}
  xs, lengths = _inputs(jax.random.PRNGKey(13)), jnp.asarray(LENGTHS)
  cat, (fwd, bwd) = unroll.bidirectional(cell, params, xs, lengths)
  summed, _ = unroll.bidirectional(cell, params, xs, lengths, merge="sum")
  ys_f, fin_f = unroll.rnn(cell, params["forward"], xs, lengths)
  ys_b, fin_b = unroll.rnn(cell, params["backward"], xs, lengths, reverse=True)
  assert cat.shape == (B, T, 2 * H)
  np.testing.assert_allclose(cat, jnp.concatenate([ys_f, ys_b], -1), atol=1e-6)
  np.testing.assert_allclose(summed, ys_f + ys_b, atol=1e-6)
  _assert_trees_close((fwd, bwd), (fin_f, fin_b), atol=1e-6)
  # The backward direction's final output is its output at step 0.
  np.testing.assert_allclose(bwd.h[0], ys_b[0, 0], atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_equals_layer_by_layer(bidirectional):
  cell = cells.gru()
  def layer(key, inp):
    if bidirectional:
      return {"forward": _random_params(cell, key, inp),
              "backward": _random_params(cell, jax.random.fold_in(key, 1), inp)}
    return _random_params(cell, key, inp)
  width = 2 * H if bidirectional else H
  layers = [layer(jax.random.PRNGKey(20), I), layer(jax.random.PRNGKey(21), width)]
  xs, lengths = _inputs(jax.random.PRNGKey(22)), jnp.asarray(LENGTHS)
  ys, finals = unroll.stacked(cell, layers, xs, lengths,
                              bidirectional=bidirectional)
  run = (unroll.bidirectional if bidirectional else
         lambda c, p, x, l: unroll.rnn(c, p, x, l))
  h1, f1 = run(cell, layers[0], xs, lengths)
  h2, f2 = run(cell, layers[1], h1, lengths)
  assert ys.shape == (B, T, width) and len(finals) == 2
  np.testing.assert_allclose(ys, h2, atol=1e-5)
  _assert_trees_close(finals, (f1, f2))


def test_stacked_dropout_only_between_layers():
  cell = cells.lstm()
  layers = [_random_params(cell, jax.random.PRNGKey(30)),
            _random_params(cell, jax.random.PRNGKey(31), H)]
  xs, lengths = _inputs(jax.random.PRNGKey(32)), jnp.asarray(LENGTHS)
  plain, _ = unroll.stacked(cell, layers, xs, lengths)
  no_rng, _ = unroll.stacked(cell, layers, xs, lengths, dropout_rate=0.5)
  dropped, _ = unroll.stacked(cell, layers, xs, lengths, dropout_rate=0.5,
                              dropout_rng=jax.random.PRNGKey(0))
  np.testing.assert_array_equal(plain, no_rng)
  assert not np.allclose(plain, dropped)
  # One layer: nothing between layers, so dropout changes nothing.
  one, _ = unroll.stacked(cell, layers[:1], xs, lengths, dropout_rate=0.5,
                          dropout_rng=jax.random.PRNGKey(0))
  np.testing.assert_array_equal(one, unroll.rnn(cell, layers[0], xs, lengths)[0])


@pytest.mark.parametrize("name", sorted(CELLS))
def test_gradients_match_finite_differences(name):
  cell = CELLS[name]()
  with jax.enable_x64(True):
    key = jax.random.PRNGKey(40)
    params = _random_params(cell, key, 3, 4, jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(41), (2, 5, 3), jnp.float64)
    lengths = jnp.array([5, 3])

    def loss(params, xs):
      ys, final = unroll.rnn(cell, params, xs, lengths)
      ys_r, _ = unroll.rnn(cell, params, xs, lengths, reverse=True)
      return jnp.sum(ys ** 2) + jnp.sum(final.h) + jnp.sum(jnp.sin(ys_r))

    jtu.check_grads(jax.jit(loss), (params, xs), order=1, modes=("rev",),
                              eps=1e-6, atol=1e-6, rtol=1e-6)


def test_grads_do_not_flow_from_padding():
  cell = cells.lstm()
  params = _random_params(cell, jax.random.PRNGKey(42))
  xs = _inputs(jax.random.PRNGKey(43))
  grad = jax.grad(lambda x: jnp.sum(unroll.rnn(cell, params, x,
                                               jnp.asarray(LENGTHS))[0]))(xs)
  for b, length in enumerate(LENGTHS):
    np.testing.assert_array_equal(grad[b, length:], 0.0)
    if length:
      assert np.abs(grad[b, :length]).sum() > 0


# ----------------------------------------------------------------------------
# Agreement with Flax's own cells under mapped weights.

def _flax_lstm_params(p, h):
  names = "ifgo"
  out = {}
  for k, gate in enumerate(names):
    cols = slice(k * h, (k + 1) * h)
    out[f"i{gate}"] = {"kernel": p["w_ih"][:, cols]}
    out[f"h{gate}"] = {"kernel": p["w_hh"][:, cols], "bias": p["b"][cols]}
  return out


def _flax_gru_params(p, h):
  out = {}
  for k, gate in enumerate("rzn"):
    cols = slice(k * h, (k + 1) * h)
    out[f"h{gate}"] = {"kernel": p["w_hh"][:, cols]}
    bias = p["b_ih"][cols] + (p["b_hh"][cols] if gate != "n" else 0.0)
    out[f"i{gate}"] = {"kernel": p["w_ih"][:, cols], "bias": bias}
  out["hn"]["bias"] = p["b_hh"][2 * h:]
  return out


def _flax_simple_params(p, h):
  return {"i": {"kernel": p["w_ih"], "bias": p["b"]}, "h": {"kernel": p["w_hh"]}}


FLAX_PAIRS = {
    "lstm": (cells.lstm, nn.LSTMCell, _flax_lstm_params),
    "gru": (cells.gru, nn.GRUCell, _flax_gru_params),
    "rnn_tanh": (cells.elman, nn.SimpleCell, _flax_simple_params),
}


@pytest.mark.parametrize("name", sorted(FLAX_PAIRS))
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_flax_cells(name, reverse):
  make_cell, flax_cell, mapping = FLAX_PAIRS[name]
  cell = make_cell()
  params = _random_params(cell, jax.random.PRNGKey(50))
  xs, lengths = _inputs(jax.random.PRNGKey(51)), jnp.asarray(LENGTHS)
  ys, final = unroll.rnn(cell, params, xs, lengths, reverse=reverse)

  layer = nn.RNN(flax_cell(features=H), return_carry=True, reverse=reverse,
                 keep_order=True)
  variables = {"params": {"cell": mapping(params, H)}}
  carry, flax_ys = layer.apply(variables, xs, seq_lengths=lengths)
  flax_h = carry[1] if name == "lstm" else carry
  for b, length in enumerate(LENGTHS):
    np.testing.assert_allclose(ys[b, :length], flax_ys[b, :length], atol=1e-5)
    if length:
      np.testing.assert_allclose(final.h[b], flax_h[b], atol=1e-5)
  if name == "lstm":
    np.testing.assert_allclose(final.c[LENGTHS > 0], carry[0][LENGTHS > 0],
                               atol=1e-5)


# ----------------------------------------------------------------------------
# Dtypes, jit, shapes.

@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_bfloat16_runs(name):
  cell = CELLS[name]()
  params = _random_params(cell, jax.random.PRNGKey(60))
  xs, lengths = _inputs(jax.random.PRNGKey(61)), jnp.asarray(LENGTHS)
  want, _ = unroll.rnn(cell, params, xs, lengths)
  mixed, _ = jax.jit(lambda p, x: unroll.rnn(cell, p, x, lengths))(
      params, xs.astype(jnp.bfloat16))
  assert mixed.dtype == jnp.float32
  params_bf16 = jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), params)
  low, final = unroll.rnn(cell, params_bf16, xs.astype(jnp.bfloat16), lengths)
  assert low.dtype == jnp.bfloat16 and final.h.dtype == jnp.bfloat16
  np.testing.assert_allclose(mixed, want, atol=0.05)
  np.testing.assert_allclose(low.astype(jnp.float32), want, atol=0.1)


def test_jit_and_traced_lengths():
  cell = cells.lstm()
  params = _random_params(cell, jax.random.PRNGKey(62))
  xs, lengths = _inputs(jax.random.PRNGKey(63)), jnp.asarray(LENGTHS)
  eager = unroll.rnn(cell, params, xs, lengths)
  jitted = jax.jit(lambda p, x, l: unroll.rnn(cell, p, x, l))(params, xs, lengths)
  _assert_trees_close(eager, jitted, atol=1e-6)


def test_init_shapes_and_forget_bias():
  p = cells.lstm(forget_bias=2.5).init(jax.random.PRNGKey(0), I, H)
  assert {k: v.shape for k, v in p.items()} == {
      "w_ih": (I, 4 * H), "w_hh": (H, 4 * H), "b": (4 * H,)}
  np.testing.assert_array_equal(p["b"][H:2 * H], 2.5)
  np.testing.assert_array_equal(p["b"][:H], 0.0)
  g = cells.gru().init(jax.random.PRNGKey(0), I, H)
  assert {k: v.shape for k, v in g.items()} == {
      "w_ih": (I, 3 * H), "w_hh": (H, 3 * H), "b_ih": (3 * H,), "b_hh": (3 * H,)}
  e = cells.elman().init(jax.random.PRNGKey(0), I, H)
  assert {k: v.shape for k, v in e.items()} == {
      "w_ih": (I, H), "w_hh": (H, H), "b": (H,)}


# ----------------------------------------------------------------------------
# Clear errors.

@pytest.mark.parametrize("xs_shape,lengths,match", [
    ((B, T), None, r"xs: expected rank 3 .* got shape \(4, 7\)"),
    ((B, T, I + 1), None, r"xs: expected last dimension 5 .* got shape \(4, 7, 6\)"),
    ((B, T, I), np.array([1, 2, 3], np.int32), r"lengths: expected shape \(4,\).* got \(3,\)"),
    ((B, T, I), np.array([1, 2, 3, 8], np.int32), r"lengths: values must lie in \[0, T=7\].*max 8"),
    ((B, T, I), np.array([1, -1, 3, 2], np.int32), r"lengths: .*min -1"),
    ((B, T, I), np.array([1., 2., 3., 2.]), r"lengths: expected an integer dtype"),
])
def test_bad_inputs_raise_clear_errors(xs_shape, lengths, match):
  cell = cells.lstm()
  params = cell.init(jax.random.PRNGKey(0), I, H)
  with pytest.raises(ValueError, match=match):
    unroll.rnn(cell, params, jnp.zeros(xs_shape), lengths)


def test_bad_params_state_and_names_raise_clear_errors():
  lstm = cells.lstm()
  gru_params = cells.gru().init(jax.random.PRNGKey(0), I, H)
  with pytest.raises(ValueError, match=r"params\['w_hh'\]: expected shape \[H, 4H\]"):
    unroll.rnn(lstm, gru_params, jnp.zeros((B, T, I)))
  params = lstm.init(jax.random.PRNGKey(0), I, H)
  with pytest.raises(ValueError, match="initial_state: expected LSTMState"):
    unroll.rnn(lstm, params, jnp.zeros((B, T, I)),
               initial_state=cells.HiddenState(jnp.zeros((B, H))))
  with pytest.raises(ValueError, match="initial_state: expected"):
    unroll.rnn(lstm, params, jnp.zeros((B, T, I)),
               initial_state=lstm.initial_state(B + 1, H))
  with pytest.raises(ValueError, match=r"cell: unknown cell 'lstn'.*'gru', 'lstm', 'rnn'"):
    cells.get_cell("lstn")
  with pytest.raises(ValueError, match="bad options"):
    cells.get_cell("lstm", reset_after=True)
  with pytest.raises(ValueError, match="merge"):
    unroll.bidirectional(lstm, {"forward": params, "backward": params},
                         jnp.zeros((B, T, I)), merge="mean")
  with pytest.raises(ValueError, match="keys"):
    unroll.bidirectional(lstm, params, jnp.zeros((B, T, I)))
  with pytest.raises(ValueError, match="layers: expected at least one"):
    unroll.stacked(lstm, [], jnp.zeros((B, T, I)))


@pytest.mark.parametrize("cell_name", ["lstm", "gru"])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("unroll_steps", [1, 2])
def test_fused_equals_generic_scan_values_and_grads(cell_name, use_lengths,
                                                    reverse, unroll_steps):
  """models.fused (hand-written VJP) == autodiff of cell.step."""
  cell = CELLS[cell_name]()
  params = _random_params(cell, jax.random.PRNGKey(70))
  xs = _inputs(jax.random.PRNGKey(71))
  lengths = jnp.asarray(LENGTHS) if use_lengths else None
  init = jax.tree_util.tree_map(
      lambda z: jax.random.normal(jax.random.PRNGKey(72), z.shape),
      cell.initial_state(B, H))

  def loss(params, xs, init, implementation):
    ys, final = unroll.rnn(cell, params, xs, lengths, reverse=reverse,
                           initial_state=init, unroll=unroll_steps,
                           implementation=implementation)
    extra = 0.3 * jnp.sum(final.c) if cell_name == "lstm" else 0.0
    return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h ** 2) + extra

  fused = jax.value_and_grad(loss, argnums=(0, 1, 2))(params, xs, init, "auto")
  generic = jax.value_and_grad(loss, argnums=(0, 1, 2))(params, xs, init, "scan")
  _assert_trees_close(fused, generic, atol=2e-5)


def test_fused_gradients_match_finite_differences():
  """An independent check of the hand-written VJPs in float64."""
  with jax.enable_x64(True):
    for cell_name in ("lstm", "gru"):
      cell = CELLS[cell_name]()
      params = _random_params(cell, jax.random.PRNGKey(73), dtype=jnp.float64)
      xs = _inputs(jax.random.PRNGKey(74)).astype(jnp.float64)
      lengths = jnp.asarray(LENGTHS)

      def loss(params):
        ys, _ = unroll.rnn(cell, params, xs, lengths)
        return jnp.sum(jnp.sin(ys))
      numerics.check_directional_derivative(
          loss, jax.grad(loss)(params), params, jax.random.PRNGKey(75),
          err_msg=cell_name)


@pytest.mark.parametrize("cell_name,saved", [("lstm", 6), ("gru", 5)])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("unroll_steps", [1, 2])
def test_fused_backward_overwrites_saved_arrays_in_place(cell_name, saved,
                                                         use_lengths,
                                                         unroll_steps):
  """The backward scan writes the gate gradients over the saved activations.

  No loop body copies a [T, ...] array (XLA does so every step when it cannot
  update in place), and the working memory of a training step stays below
  the saved [T, B, H] arrays (LSTM: ys, i, f, g, o, c; GRU: ys, r, z, n,
  h_n; with lengths also the held states) plus 3 more, which a separate
  [T, B, G*H] gate-gradient array would exceed.
  """
  steps, batch, hidden = 40, 8, 32
  cell = CELLS[cell_name]()
  params = cell.init(jax.random.PRNGKey(0), I, hidden)
  xs = _inputs(jax.random.PRNGKey(1), batch, steps)
  lengths = jnp.arange(batch) * 5 if use_lengths else None

  def loss(params, xs):
    ys, _ = unroll.rnn(cell, params, xs, lengths, unroll=unroll_steps)
    return jnp.sum(ys)
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
  text = compiled.as_text()
  bodies = set(re.findall(r"body=%?([\w.\-]+)", text))
  assert bodies
  computation, copies = None, []
  for line in text.splitlines():
    if line and not line.startswith(" "):
      header = re.match(r"(?:ENTRY )?%([\w.\-]+) ", line)
      computation = header and header.group(1)
    elif (computation in bodies and " copy(" in line
          and f"[{steps}," in line.split("=")[1].split("(")[0]):
      copies.append(line.strip())
  assert not copies, copies
  temp = compiled.memory_analysis().temp_size_in_bytes
  per_array = steps * batch * hidden * 4
  saved += 1 if use_lengths else 0  # the held states (ys are zero past the end)
  assert temp < (saved + 3) * per_array, temp / per_array


def test_fast_paths_are_cell_fields():
  """LSTM and reset_after GRU carry a fused recurrence, the LSTM a cuDNN
  path; Elman and the original GRU neither."""
  assert cells.lstm().fused is not None and cells.lstm().cudnn is not None
  assert cells.gru(reset_after=True).fused is not None
  assert cells.gru(reset_after=True).cudnn is None
  for cell in (cells.elman("tanh"), cells.elman("relu"),
               cells.gru(reset_after=False)):
    assert cell.fused is None and cell.cudnn is None


def test_a_user_cell_named_lstm_runs_its_own_step():
  """Dispatch reads Cell.fused, never the name: a user cell called 'lstm'
  without a fused recurrence runs the generic scan of its own step."""
  base = cells.lstm()

  def step(params, state, gx_t):  # an LSTM with its output halved
    new_state, _ = base.step(params, state, gx_t)
    h = 0.5 * new_state.h
    return cells.LSTMState(h, new_state.c), h
  cell = cells.Cell("lstm", 4, base.init, base.initial_state, base.project,
                    step)
  assert cell.fused is None and cell.cudnn is None
  params = _random_params(cell, jax.random.PRNGKey(76))
  xs, lengths = _inputs(jax.random.PRNGKey(77)), jnp.asarray(LENGTHS)
  want_ys, want_final = _python_loop(cell, params, xs, LENGTHS)
  for implementation in ("auto", "scan"):
    ys, final = unroll.rnn(cell, params, xs, lengths,
                           implementation=implementation)
    np.testing.assert_allclose(ys, want_ys, atol=1e-5, rtol=1e-5)
    _assert_trees_close(final, want_final)
  assert not np.allclose(ys, unroll.rnn(base, params, xs, lengths)[0],
                         atol=1e-3)
  with pytest.raises(ValueError, match="implementation='fused' needs a cell "
                     r"with a fused recurrence \(Cell.fused.*cell 'lstm' has "
                     "none; use 'auto' or 'scan'"):
    unroll.rnn(cell, params, xs, lengths, implementation="fused")
  with pytest.raises(ValueError, match=r"implementation='cudnn' .*got cell "
                     r"'lstm' \(Cell.cudnn None\)"):
    unroll.rnn(cell, params, xs, lengths, implementation="cudnn")


def test_unknown_implementation_is_an_error():
  cell = cells.lstm()
  with pytest.raises(ValueError, match=r"implementation: expected one of "
                     r"\('auto', 'fused', 'cudnn', 'scan'\), got 'cuda'"):
    unroll.rnn(cell, cell.init(jax.random.PRNGKey(0), I, H), jnp.zeros((B, T, I)),
               implementation="cuda")
