"""Variational (recurrent) dropout: masks in the scan, the fused VJPs, stacks
and the Flax module, against hand-written loops and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import cells, layers, unroll
from tests import numerics

B, T, I, H = 4, 6, 3, 5
LENGTHS = np.array([6, 2, 0, 4], np.int32)

CELLS = {
    "rnn": lambda: cells.elman("tanh"),
    "lstm": lambda: cells.lstm(),
    "gru": lambda: cells.gru(reset_after=True),
    "gru_original": lambda: cells.gru(reset_after=False),
}
# (cell, implementation): the generic scan for every cell, fused where set.
RUNS = [(name, "scan") for name in sorted(CELLS)] + [("gru", "fused"),
                                                     ("lstm", "fused")]


def _params(cell, key, input_size=I, hidden=H, dtype=jnp.float32):
  """Params with every entry random, biases too, so no term hides."""
  params = cell.init(key, input_size, hidden, dtype)
  keys = jax.random.split(jax.random.fold_in(key, 7), len(params))
  return {name: value + 0.3 * jax.random.normal(k, value.shape, dtype)
          for k, (name, value) in zip(keys, sorted(params.items()))}


def _inputs(key, batch=B, steps=T, features=I, dtype=jnp.float32):
  return jax.random.normal(key, (batch, steps, features), dtype)


def _masks(key, batch=B, input_size=I, hidden=H, dtype=jnp.float32):
  return unroll.variational_masks(key, batch, input_size, hidden, 0.4, 0.5,
                                  dtype)


def _close(a, b, atol=1e-5, rtol=1e-5):
  jax.tree_util.tree_map(
      lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y),
                                              atol=atol, rtol=rtol), a, b)


# ----------------------------------------------------------------------------
# A reference written out by hand: each sequence alone, step by step, the
# masks applied where the paper puts them.

def _sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def _reference_step(name, p, state, x, m_h):
  """One step of cell `name` on one sequence (x [I], state fields [H]) with
  the recurrent mask m_h [H] on h wherever h enters a recurrent matmul."""
  w_ih, w_hh = p["w_ih"], p["w_hh"]
  h = state[0]
  hm = h * m_h
  if name == "rnn":
    h = np.tanh(x @ w_ih + p["b"] + hm @ w_hh)
    return (h,), h
  if name == "lstm":
    i, f, g, o = np.split(x @ w_ih + p["b"] + hm @ w_hh, 4)
    c = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return (h, c), h
  gx = x @ w_ih + p["b_ih"]
  x_r, x_z, x_n = np.split(gx, 3)
  if name == "gru":
    h_r, h_z, h_n = np.split(hm @ w_hh + p["b_hh"], 3)
    r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
  else:  # the original form: the reset gate scales the masked h
    hidden = h.shape[0]
    h_r, h_z = np.split(hm @ w_hh[:, :2 * hidden] + p["b_hh"][:2 * hidden], 2)
    r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
    n = np.tanh(x_n + (r * hm) @ w_hh[:, 2 * hidden:] + p["b_hh"][2 * hidden:])
  h = (1.0 - z) * n + z * h      # the interpolation reads the unmasked h
  return (h,), h


def _reference(name, params, xs, lengths, m_x, m_h, reverse=False):
  """ys [B, T, H] and final states, in float64 NumPy."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  xs, m_x, m_h = (np.asarray(a, np.float64) for a in (xs, m_x, m_h))
  ys = np.zeros(xs.shape[:2] + (H,))
  finals = []
  for b in range(xs.shape[0]):
    state = (np.zeros(H),) * (2 if name == "lstm" else 1)
    order = range(lengths[b])
    for t in (reversed(order) if reverse else order):
      state, ys[b, t] = _reference_step(name, p, state, xs[b, t] * m_x[b],
                                        m_h[b])
    finals.append(state)
  return ys, [np.stack(f) for f in zip(*finals)]


@pytest.mark.parametrize("name,implementation", RUNS)
@pytest.mark.parametrize("reverse", [False, True])
def test_masked_rnn_matches_a_python_loop(name, implementation, reverse):
  cell = CELLS[name]()
  params = _params(cell, jax.random.PRNGKey(0))
  xs = _inputs(jax.random.PRNGKey(1))
  m_x, m_h = _masks(jax.random.PRNGKey(2))
  ys, final = unroll.rnn(cell, params, xs, LENGTHS, reverse=reverse,
                         implementation=implementation, input_mask=m_x,
                         recurrent_mask=m_h)
  want_ys, want_final = _reference(name, params, xs, LENGTHS, m_x, m_h,
                                   reverse)
  np.testing.assert_allclose(ys, want_ys, atol=2e-5, rtol=2e-5)
  _close(tuple(final), tuple(want_final), atol=2e-5, rtol=2e-5)
  # The masks matter: without them the outputs differ.
  plain, _ = unroll.rnn(cell, params, xs, LENGTHS, reverse=reverse,
                        implementation=implementation)
  assert not np.allclose(plain, ys, atol=1e-3)


@pytest.mark.parametrize("name,implementation", RUNS)
def test_a_mask_is_the_same_at_every_step(name, implementation):
  """A mask shared by the batch equals scaling the rows of the weights it
  feeds, at every step: (x * v) W_ih = x (diag(v) W_ih) and likewise for
  h and W_hh, for the whole sequence (a mask applied at some steps only, or
  also outside the recurrent matmuls, would differ)."""
  cell = CELLS[name]()
  params = _params(cell, jax.random.PRNGKey(3))
  xs = _inputs(jax.random.PRNGKey(4))
  v_x = jnp.array([0.0, 2.0, 1.5])
  v_h = jnp.array([2.0, 0.0, 1.0, 0.5, 2.0])
  ys, final = unroll.rnn(cell, params, xs, LENGTHS,
                         implementation=implementation,
                         input_mask=jnp.tile(v_x, (B, 1)),
                         recurrent_mask=jnp.tile(v_h, (B, 1)))
  scaled = dict(params, w_ih=params["w_ih"] * v_x[:, None],
                w_hh=params["w_hh"] * v_h[:, None])
  want = unroll.rnn(cell, scaled, xs, LENGTHS, implementation=implementation)
  _close((ys, final), want)


@pytest.mark.parametrize("name,implementation",
                         [("lstm", "scan"), ("lstm", "fused"), ("rnn", "scan")])
def test_a_dropped_unit_never_reaches_the_recurrence(name, implementation):
  """Where h enters only the recurrent matmul (LSTM, Elman), a unit the mask
  drops has no influence on any later step: the outputs' gradient with
  respect to the initial h of that unit is zero."""
  cell = CELLS[name]()
  params = _params(cell, jax.random.PRNGKey(5))
  xs = _inputs(jax.random.PRNGKey(6))
  m_h = jnp.ones((B, H)).at[:, 1].set(0.0).at[2, 3].set(0.0)
  state = cell.initial_state(B, H)

  def loss(h0):
    ys, _ = unroll.rnn(cell, params, xs, initial_state=state._replace(h=h0),
                       implementation=implementation, recurrent_mask=m_h)
    return jnp.sum(jnp.sin(ys))
  grad = jax.grad(loss)(jax.random.normal(jax.random.PRNGKey(7), (B, H)))
  np.testing.assert_array_equal(np.asarray(grad)[np.asarray(m_h) == 0], 0.0)
  assert np.all(np.asarray(grad)[np.asarray(m_h) != 0] != 0)


# ----------------------------------------------------------------------------
# The fused VJPs with masks.

@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("use_lengths,reverse", [(False, False), (True, True)])
def test_fused_equals_scan_with_masks(name, use_lengths, reverse):
  """Values and gradients with respect to params, inputs, the initial state
  and both masks."""
  cell = CELLS[name]()
  params = _params(cell, jax.random.PRNGKey(8))
  xs = _inputs(jax.random.PRNGKey(9))
  lengths = LENGTHS if use_lengths else None
  masks = _masks(jax.random.PRNGKey(10))
  init = jax.tree_util.tree_map(
      lambda z: jax.random.normal(jax.random.PRNGKey(11), z.shape),
      cell.initial_state(B, H))

  def loss(params, xs, init, masks, implementation):
    ys, final = unroll.rnn(cell, params, xs, lengths, reverse=reverse,
                           initial_state=init, implementation=implementation,
                           input_mask=masks[0], recurrent_mask=masks[1])
    extra = 0.3 * jnp.sum(final.c) if name == "lstm" else 0.0
    return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h ** 2) + extra

  grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)),
                 static_argnums=4)
  fused = grad(params, xs, init, masks, "fused")
  scan = grad(params, xs, init, masks, "scan")
  _close(fused, scan, atol=3e-5)
  # The primal (feature-major) forward pass agrees too.
  _close(jax.jit(loss, static_argnums=4)(params, xs, init, masks, "fused"),
         scan[0])


def test_fused_gradients_with_masks_match_finite_differences():
  with jax.enable_x64(True):
    for name in ("lstm", "gru"):
      cell = CELLS[name]()
      params = _params(cell, jax.random.PRNGKey(12), 2, 3, jnp.float64)
      xs = _inputs(jax.random.PRNGKey(13), 2, 4, 2, jnp.float64)
      masks = unroll.variational_masks(jax.random.PRNGKey(14), 2, 2, 3, 0.3,
                                       0.3, jnp.float64)
      lengths = np.array([4, 3], np.int32)

      def loss(args):
        params, xs, m_x, m_h = args
        ys, final = unroll.rnn(cell, params, xs, lengths, input_mask=m_x,
                               recurrent_mask=m_h, implementation="fused")
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h)
      args = (params, xs) + masks
      # One compiled program gives the gradient and the shifted losses.
      value_and_grad = jax.jit(jax.value_and_grad(loss))
      numerics.check_directional_derivative(
          lambda args: value_and_grad(args)[0], value_and_grad(args)[1], args,
          jax.random.PRNGKey(15), err_msg=name)


# ----------------------------------------------------------------------------
# Lengths and padding.

@pytest.mark.parametrize("name,implementation", RUNS)
def test_padding_invariance_with_masks(name, implementation):
  """A padded batch gives what each sequence gives alone, with its masks,
  reversed within its length (forward, the loop test compares each sequence
  with its own unpadded computation)."""
  reverse = True
  cell = CELLS[name]()
  params = _params(cell, jax.random.PRNGKey(16))
  xs = _inputs(jax.random.PRNGKey(17)) * 50.0  # garbage padding
  m_x, m_h = _masks(jax.random.PRNGKey(18))
  run = lambda x, lengths, b: unroll.rnn(
      cell, params, x, lengths, reverse=reverse, implementation=implementation,
      input_mask=m_x[b], recurrent_mask=m_h[b])
  ys, finals = run(xs, LENGTHS, slice(None))
  for b, length in enumerate(LENGTHS):
    np.testing.assert_array_equal(ys[b, length:], 0.0)
    if length == 0:
      continue
    alone_ys, alone_final = run(xs[b:b + 1, :length], None, slice(b, b + 1))
    np.testing.assert_allclose(ys[b, :length], alone_ys[0], atol=1e-5)
    _close(jax.tree_util.tree_map(lambda a: a[b:b + 1], finals), alone_final)


# ----------------------------------------------------------------------------
# Drawing masks; stacks and directions.

def test_variational_masks_are_inverted_dropout_per_sequence():
  m_x, m_h = unroll.variational_masks(jax.random.PRNGKey(19), 512, 16, 32,
                                      0.25, 0.5, jnp.bfloat16)
  assert m_x.shape == (512, 16) and m_h.shape == (512, 32)
  assert m_x.dtype == m_h.dtype == jnp.bfloat16
  for mask, rate in ((m_x, 0.25), (m_h, 0.5)):
    values = np.asarray(mask, np.float32)
    np.testing.assert_allclose(np.unique(values), [0.0, 1.0 / (1.0 - rate)],
                               rtol=1e-2)
    assert abs(np.mean(values == 0.0) - rate) < 0.02
    assert len({row.tobytes() for row in values}) > 400  # per sequence
  assert unroll.variational_masks(jax.random.PRNGKey(0), 2, 3, 4) == (None,
                                                                      None)
  only_h = unroll.variational_masks(jax.random.PRNGKey(0), 2, 3, 4, 0.0, 0.5)
  assert only_h[0] is None and only_h[1].shape == (2, 4)


def _recording(monkeypatch):
  """Records every mask pair `unroll` draws."""
  drawn = []
  original = unroll.variational_masks

  def record(*args, **kwargs):
    drawn.append(original(*args, **kwargs))
    return drawn[-1]
  monkeypatch.setattr(unroll, "variational_masks", record)
  return drawn


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_draws_independent_masks_per_layer_and_direction(
    monkeypatch, bidirectional):
  cell = cells.lstm()
  width = 2 * H if bidirectional else H

  def layer(key, inputs):
    if bidirectional:
      return {"forward": _params(cell, key, inputs),
              "backward": _params(cell, jax.random.fold_in(key, 1), inputs)}
    return _params(cell, key, inputs)
  stack = [layer(jax.random.PRNGKey(20), I), layer(jax.random.PRNGKey(21), width)]
  xs = _inputs(jax.random.PRNGKey(22))
  rng = jax.random.PRNGKey(23)
  drawn = _recording(monkeypatch)
  ys, finals = unroll.stacked(cell, stack, xs, LENGTHS,
                              bidirectional=bidirectional, dropout_rng=rng,
                              input_dropout_rate=0.5,
                              recurrent_dropout_rate=0.5)
  runs = 2 * len(stack) if bidirectional else len(stack)
  assert len(drawn) == runs
  recurrent = [np.asarray(m_h) for _, m_h in drawn]
  for a in range(runs):
    assert len({row.tobytes() for row in recurrent[a]}) > 1  # per sequence
    for b in range(a):
      assert not np.array_equal(recurrent[a], recurrent[b])
  # The stack is its layers run with those masks, one after the other.
  inputs, want_finals = xs, []
  for depth, params in enumerate(stack):
    if bidirectional:
      (fx, fh), (bx, bh) = drawn[2 * depth], drawn[2 * depth + 1]
      ys_f, fin_f = unroll.rnn(cell, params["forward"], inputs, LENGTHS,
                               input_mask=fx, recurrent_mask=fh)
      ys_b, fin_b = unroll.rnn(cell, params["backward"], inputs, LENGTHS,
                               reverse=True, input_mask=bx, recurrent_mask=bh)
      inputs, final = jnp.concatenate([ys_f, ys_b], -1), (fin_f, fin_b)
    else:
      m_x, m_h = drawn[depth]
      inputs, final = unroll.rnn(cell, params, inputs, LENGTHS,
                                 input_mask=m_x, recurrent_mask=m_h)
    want_finals.append(final)
  np.testing.assert_allclose(ys, inputs, atol=1e-5)
  _close(finals, tuple(want_finals))


def test_bidirectional_masks_differ_by_direction(monkeypatch):
  cell = cells.gru()
  params = {"forward": _params(cell, jax.random.PRNGKey(24)),
            "backward": _params(cell, jax.random.PRNGKey(25))}
  xs = _inputs(jax.random.PRNGKey(26))
  drawn = _recording(monkeypatch)
  ys, _ = unroll.bidirectional(cell, params, xs, LENGTHS,
                               input_dropout_rate=0.3,
                               recurrent_dropout_rate=0.3,
                               dropout_rng=jax.random.PRNGKey(27))
  (fx, fh), (bx, bh) = drawn
  assert not np.array_equal(fx, bx) and not np.array_equal(fh, bh)
  plain, _ = unroll.bidirectional(cell, params, xs, LENGTHS)
  no_rng, _ = unroll.bidirectional(cell, params, xs, LENGTHS,
                                   input_dropout_rate=0.3,
                                   recurrent_dropout_rate=0.3)
  np.testing.assert_array_equal(no_rng, plain)
  assert not np.allclose(ys, plain, atol=1e-3)


def test_zero_rates_change_nothing_and_between_layer_dropout_is_unchanged():
  """Rates of 0 (the default) draw no masks: the stack is bit-identical, and
  the between-layer dropout keeps its keys when variational dropout is on
  (its layer 0 then differs only by the masks)."""
  cell = cells.gru()
  stack = [_params(cell, jax.random.PRNGKey(28)),
           _params(cell, jax.random.PRNGKey(29), H)]
  xs = _inputs(jax.random.PRNGKey(30))
  rng = jax.random.PRNGKey(31)
  before, _ = unroll.stacked(cell, stack, xs, LENGTHS, dropout_rate=0.5,
                             dropout_rng=rng)
  zero, _ = unroll.stacked(cell, stack, xs, LENGTHS, dropout_rate=0.5,
                           dropout_rng=rng, input_dropout_rate=0.0,
                           recurrent_dropout_rate=0.0)
  np.testing.assert_array_equal(zero, before)
  h1, _ = unroll.rnn(cell, stack[0], xs, LENGTHS)
  keep = jax.random.bernoulli(jax.random.fold_in(rng, 0), 0.5, h1.shape)
  h1 = jnp.where(keep, h1 / 0.5, 0.0)
  np.testing.assert_allclose(before, unroll.rnn(cell, stack[1], h1, LENGTHS)[0],
                             atol=1e-6)


# ----------------------------------------------------------------------------
# The Flax module.

def _module(**rates):
  return layers.RNN(cell="lstm", hidden_size=H, num_layers=2,
                    bidirectional=True, **rates)


def test_rnn_module_dropout_only_when_not_deterministic():
  """Off at evaluation (deterministic=True equals rates of 0); in training,
  new masks per 'dropout' rng, under jit and differentiated."""
  xs = _inputs(jax.random.PRNGKey(32))
  variables = _module().init(jax.random.PRNGKey(33), xs, LENGTHS)
  module = _module(input_dropout_rate=0.5, recurrent_dropout_rate=0.5)
  plain, _ = jax.jit(_module().apply)(variables, xs, LENGTHS)
  evaluated, _ = jax.jit(module.apply)(variables, xs, LENGTHS)
  np.testing.assert_array_equal(evaluated, plain)

  @jax.jit
  def train(params, seed):
    def loss(params):
      ys, _ = module.apply({"params": params}, xs, LENGTHS,
                           deterministic=False,
                           rngs={"dropout": jax.random.PRNGKey(seed)})
      return jnp.sum(ys ** 2), ys
    return jax.value_and_grad(loss, has_aux=True)(params)
  (_, a), grads = train(variables["params"], 0)
  (_, b), _ = train(variables["params"], 1)
  assert not np.allclose(a, plain, atol=1e-3)
  assert not np.allclose(a, b, atol=1e-3)
  np.testing.assert_array_equal(a, train(variables["params"], 0)[0][1])
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  for row, length in enumerate(LENGTHS):
    np.testing.assert_array_equal(a[row, length:], 0.0)


# ----------------------------------------------------------------------------
# Errors.

def _user_cell():
  """An LSTM written against the three-argument step of the Cell contract."""
  base = cells.lstm()

  def step(params, state, gx_t):
    return base.step(params, state, gx_t)
  return cells.Cell("my_lstm", 4, base.init, base.initial_state, base.project,
                    step)


def test_a_cell_without_support_refuses_a_recurrent_mask():
  cell = _user_cell()
  assert not cell.supports_recurrent_mask
  assert all(make().supports_recurrent_mask for make in CELLS.values())
  params = _params(cell, jax.random.PRNGKey(34))
  xs = _inputs(jax.random.PRNGKey(35))
  m_x, m_h = _masks(jax.random.PRNGKey(36))
  with pytest.raises(ValueError, match=r"recurrent_mask: cell 'my_lstm' does "
                     r"not support a recurrent mask \(Cell.supports_recurrent"):
    unroll.rnn(cell, params, xs, recurrent_mask=m_h)
  with pytest.raises(ValueError, match="recurrent_dropout_rate: cell 'my_lstm'"):
    unroll.stacked(cell, [params], xs, recurrent_dropout_rate=0.5)
  # The input mask needs nothing from the cell.
  ys, _ = unroll.rnn(cell, params, xs, LENGTHS, input_mask=m_x)
  want, _ = unroll.rnn(cells.lstm(), params, xs, LENGTHS, input_mask=m_x)
  np.testing.assert_allclose(ys, want, atol=1e-5)


def test_bad_masks_and_rates_raise_clear_errors():
  cell = cells.lstm()
  params = _params(cell, jax.random.PRNGKey(37))
  xs = _inputs(jax.random.PRNGKey(38))
  with pytest.raises(ValueError, match=r"input_mask: expected shape \(4, 3\) "
                     r"\[B, I\].*got \(4, 6, 3\)"):
    unroll.rnn(cell, params, xs, input_mask=jnp.ones((B, T, I)))
  with pytest.raises(ValueError, match=r"recurrent_mask: expected shape \(4, 5\) "
                     r"\[B, H\].*got \(4, 3\)"):
    unroll.rnn(cell, params, xs, recurrent_mask=jnp.ones((B, I)))
  with pytest.raises(ValueError, match="recurrent_mask: implementation='cudnn'"):
    unroll.rnn(cell, params, xs, recurrent_mask=jnp.ones((B, H)),
               implementation="cudnn")
  for rate in (1.0, -0.1, "0.5", None, True):
    with pytest.raises(ValueError, match=r"input_rate: expected a value in \[0, 1\)"):
      unroll.variational_masks(jax.random.PRNGKey(0), B, I, H, input_rate=rate)
    with pytest.raises(ValueError, match=r"recurrent_rate: expected a value in"):
      unroll.variational_masks(jax.random.PRNGKey(0), B, I, H,
                               recurrent_rate=rate)
    with pytest.raises(ValueError, match=r"input_dropout_rate: expected a value"):
      unroll.stacked(cell, [params], xs, input_dropout_rate=rate)
    with pytest.raises(ValueError, match=r"recurrent_dropout_rate: expected a "):
      unroll.bidirectional(cell, {"forward": params, "backward": params}, xs,
                           recurrent_dropout_rate=rate)
  for name in ("input_dropout_rate", "recurrent_dropout_rate"):
    with pytest.raises(ValueError, match=rf"{name}: expected a value in \[0, 1\), "
                       "got 1.5"):
      layers.RNN(cell="gru", hidden_size=H, **{name: 1.5}).init(
          jax.random.PRNGKey(0), xs)
