"""Bad input to the core API (unroll.rnn, bidirectional, stacked, layers.RNN):
each is a ValueError naming the argument, before any tracing; lengths given
as a list or numpy array are accepted; traced lengths can be checked with
checkify; the default path gains no operation."""

import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np
import pytest

from models import cells, layers, unroll

B, T, I, H = 3, 5, 4, 6
XS = jnp.ones((B, T, I))
LSTM = cells.lstm()
GRU = cells.gru()
LSTM_PARAMS = LSTM.init(jax.random.PRNGKey(0), I, H)
GRU_PARAMS = GRU.init(jax.random.PRNGKey(0), I, H)


def _without(params, key):
  return {k: v for k, v in params.items() if k != key}


def _with(params, **changed):
  return {**params, **changed}


# (case, call, message): every call must raise ValueError matching message.
BAD_INPUTS = [
    ("cell as a string",
     lambda: unroll.rnn("lstm", LSTM_PARAMS, XS),
     r"^cell: expected a models.cells.Cell \(e.g. cells.get_cell\('lstm'\) .*got str"),
    ("cell as None",
     lambda: unroll.rnn(None, LSTM_PARAMS, XS), r"^cell: expected a models.cells.Cell"),
    ("params not a dict",
     lambda: unroll.rnn(LSTM, [LSTM_PARAMS], XS), r"^params: expected a dict .*got list"),
    ("LSTM bias missing",
     lambda: unroll.rnn(LSTM, _without(LSTM_PARAMS, "b"), XS),
     r"^params: missing key 'b' for cell 'lstm'; expected keys \['b', 'w_hh', 'w_ih'\]"),
    ("LSTM bias misshapen",
     lambda: unroll.rnn(LSTM, _with(LSTM_PARAMS, b=jnp.zeros(3 * H)), XS),
     r"^params\['b'\]: expected shape \(24,\) for cell 'lstm' with I=4, H=6, got \(18,\)"),
    ("LSTM bias of rank 2",
     lambda: unroll.rnn(LSTM, _with(LSTM_PARAMS, b=jnp.zeros((1, 4 * H))), XS),
     r"^params\['b'\]: expected shape \(24,\).* got \(1, 24\)"),
    ("GRU b_hh missing",
     lambda: unroll.rnn(GRU, _without(GRU_PARAMS, "b_hh"), XS),
     r"^params: missing key 'b_hh' for cell 'gru'"),
    ("GRU b_ih misshapen",
     lambda: unroll.rnn(GRU, _with(GRU_PARAMS, b_ih=jnp.zeros(4 * H)), XS),
     r"^params\['b_ih'\]: expected shape \(18,\) for cell 'gru'"),
    ("w_ih missing",
     lambda: unroll.rnn(LSTM, _without(LSTM_PARAMS, "w_ih"), XS),
     r"^params: missing key 'w_ih'"),
    ("w_hh of rank 1",
     lambda: unroll.rnn(LSTM, _with(LSTM_PARAMS, w_hh=jnp.zeros(H)), XS),
     r"^params\['w_hh'\]: expected shape \[H, 4H\]"),
    ("a param that is not an array",
     lambda: unroll.rnn(LSTM, _with(LSTM_PARAMS, b=None), XS),
     r"^params\['b'\]: expected an array, got NoneType"),
    ("xs not an array",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, "abc"), r"^xs: "),
    ("lengths of strings",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, ["a", "b", "c"]),
     r"^lengths: expected integers"),
    ("ragged lengths",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, [[1], [2, 3], 4]), r"^lengths: "),
    ("lengths of floats in a list",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, [1.0, 2.0, 3.0]),
     r"^lengths: expected an integer dtype"),
    ("lengths list too short",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, [1, 2]),
     r"^lengths: expected shape \(3,\) .*got \(2,\)"),
    ("lengths scalar",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, 4), r"^lengths: expected shape \(3,\)"),
    ("lengths over T in a list",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, [1, 2, 6]),
     r"^lengths: values must lie in \[0, T=5\], got min 1 and max 6"),
    ("lengths beyond int32",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, np.array([1, 2, 2**40])),
     r"^lengths: values must lie in \[0, T\]"),
    ("unroll zero",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, unroll=0),
     r"^unroll: expected a positive integer"),
    ("unroll a float",
     lambda: unroll.rnn(LSTM, LSTM_PARAMS, XS, unroll=1.5), r"^unroll: "),
    ("bidirectional: backward bias missing",
     lambda: unroll.bidirectional(
         LSTM, {"forward": LSTM_PARAMS, "backward": _without(LSTM_PARAMS, "b")}, XS),
     r"^params\['backward'\]: missing key 'b'"),
    ("bidirectional: a string cell",
     lambda: unroll.bidirectional(
         "gru", {"forward": GRU_PARAMS, "backward": GRU_PARAMS}, XS),
     r"^cell: .*cells.get_cell\('gru'\)"),
    ("bidirectional: initial_states not a pair",
     lambda: unroll.bidirectional(
         GRU, {"forward": GRU_PARAMS, "backward": GRU_PARAMS}, XS,
         initial_states=GRU.initial_state(B, H)),
     r"^initial_states: a bidirectional layer expects a \(forward_state, "
     r"backward_state\) pair"),
    ("stacked: layers given as one dict",
     lambda: unroll.stacked(LSTM, LSTM_PARAMS, XS),
     r"^layers: expected a list with one params dict per layer .*wrap a single"),
    ("stacked: second layer's bias misshapen",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS, _with(
         LSTM.init(jax.random.PRNGKey(1), H, H), b=jnp.zeros(H))], XS),
     r"^layers\[1\]\['b'\]: expected shape \(24,\) for cell 'lstm' with I=6, H=6"),
    ("stacked: second layer's input size",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS, LSTM_PARAMS], XS),
     r"^xs: expected last dimension 4"),
    ("stacked: bidirectional layer without directions",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS], XS, bidirectional=True),
     r"^layers\[0\]: a bidirectional layer expects a dict with keys"),
    ("stacked: a layer's initial state",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS], XS,
                            initial_states=[cells.HiddenState(jnp.zeros((B, H)))]),
     r"^initial_states\[0\]: expected LSTMState"),
    ("stacked: initial_states not a list",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS], XS, initial_states=3),
     r"^initial_states: expected 1 entries .*got int"),
    ("stacked: lengths list over T",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS], XS, [9, 1, 1]),
     r"^lengths: values must lie in \[0, T=5\]"),
    ("stacked: dropout_rate a string",
     lambda: unroll.stacked(LSTM, [LSTM_PARAMS], XS, dropout_rate="0.1"),
     r"^dropout_rate: expected a value in \[0, 1\)"),
]


@pytest.mark.parametrize("case,call,match", BAD_INPUTS,
                         ids=[case for case, _, _ in BAD_INPUTS])
def test_bad_input_is_a_value_error_naming_the_argument(case, call, match):
  del case
  with pytest.raises(ValueError, match=match):
    call()


def _rnn_module_call(xs=XS, lengths=None, **attributes):
  module = layers.RNN(**{"cell": "lstm", "hidden_size": H, **attributes})
  variables = module.init(jax.random.PRNGKey(0), XS, None)
  return module.apply(variables, xs, lengths)


@pytest.mark.parametrize("attributes,lengths,match", [
    ({"cell": "lstn"}, None, r"^cell: unknown cell 'lstn'"),
    ({"hidden_size": 0}, None, r"^hidden_size: expected a positive integer"),
    ({"num_layers": 0}, None, r"^num_layers: expected a positive integer"),
    ({"dropout_rate": 1.0}, None, r"^dropout_rate: expected a value in \[0, 1\)"),
    ({"cell_options": {"reset_after": True}}, None, r"cell 'lstm': bad options"),
    ({}, [1, 2], r"^lengths: expected shape \(3,\)"),
    ({}, [0, 6, 1], r"^lengths: values must lie in \[0, T=5\]"),
    ({}, np.array([1.5, 2, 3]), r"^lengths: expected an integer dtype"),
])
def test_flax_rnn_surfaces_the_same_errors(attributes, lengths, match):
  with pytest.raises(ValueError, match=match):
    _rnn_module_call(lengths=lengths, **attributes)


@pytest.mark.parametrize("make", [list, tuple, lambda v: np.asarray(v, np.int64),
                                  lambda v: np.asarray(v, np.int32)])
def test_lengths_as_list_or_numpy_give_the_jax_array_result(make):
  want = unroll.rnn(LSTM, LSTM_PARAMS, XS, jnp.array([5, 2, 0]))
  got = unroll.rnn(LSTM, LSTM_PARAMS, XS, make([5, 2, 0]))
  jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
  ys, _ = _rnn_module_call(lengths=make([5, 2, 0]))
  np.testing.assert_array_equal(ys[2], 0.0)


def test_a_user_cell_is_checked_from_its_init_shapes():
  """A Cell without param_shapes is checked against what its init makes."""
  cell = LSTM._replace(name="mine", param_shapes=None, fused=None, cudnn=None)
  ys, _ = unroll.rnn(cell, LSTM_PARAMS, XS)
  assert ys.shape == (B, T, H)
  with pytest.raises(ValueError, match=r"^params: missing key 'b' for cell 'mine'"):
    unroll.rnn(cell, _without(LSTM_PARAMS, "b"), XS)
  with pytest.raises(ValueError, match=r"^params\['b'\]: expected shape \(24,\)"):
    unroll.rnn(cell, _with(LSTM_PARAMS, b=jnp.zeros(5)), XS)


def test_param_shapes_describe_every_cell():
  for cell in (cells.elman("tanh"), LSTM, GRU, cells.gru(reset_after=False)):
    params = cell.init(jax.random.PRNGKey(0), I, H)
    assert cells.expected_param_shapes(cell, I, H) == {
        k: v.shape for k, v in params.items()}


def _jitted(check):
  return jax.jit(lambda l: unroll.rnn(LSTM, LSTM_PARAMS, XS, l,
                                      check_lengths_under_jit=check)[0])


def test_traced_lengths_out_of_range_are_reported_by_checkify():
  checked = checkify.checkify(_jitted(True))
  err, _ = checked(jnp.array([1, 9, -2]))
  with pytest.raises(ValueError, match=r"lengths: values must lie in \[0, "
                     r"T=5\], got min -2 and max 9"):
    err.throw()
  err, ys = checked(jnp.array([5, 2, 0]))
  assert err.get() is None
  np.testing.assert_array_equal(ys, _jitted(False)(jnp.array([5, 2, 0])))
  # Off (the default), out-of-range traced lengths act as if clipped.
  np.testing.assert_array_equal(_jitted(False)(jnp.array([9, 2, -1])),
                                _jitted(False)(jnp.array([5, 2, 0])))


def test_checkify_reaches_through_stacked_and_the_flax_module():
  module = layers.RNN(cell="gru", hidden_size=H, num_layers=2,
                      bidirectional=True, check_lengths_under_jit=True)
  variables = module.init(jax.random.PRNGKey(0), XS, None)
  run = checkify.checkify(jax.jit(lambda l: module.apply(variables, XS, l)[0]))
  err, _ = run(jnp.array([1, 2, 7]))
  with pytest.raises(ValueError, match=r"lengths: .*max 7"):
    err.throw()


def test_the_default_path_has_no_check():
  def jaxpr(check):
    return str(jax.make_jaxpr(lambda l: unroll.rnn(
        LSTM, LSTM_PARAMS, XS, l, check_lengths_under_jit=check))(jnp.array([5, 2, 0])))
  assert "check" not in jaxpr(False)
  assert "check" in jaxpr(True)
  # Concrete lengths are checked eagerly: no check is traced for them.
  assert "check" not in str(jax.make_jaxpr(lambda x: unroll.rnn(
      LSTM, LSTM_PARAMS, x, [5, 2, 0], check_lengths_under_jit=True))(XS))


def test_list_and_numpy_lengths_are_checked_under_jit_too():
  for lengths in ([1, 9, 0], np.array([1, 9, 0])):
    with pytest.raises(ValueError, match=r"^lengths: values must lie in \[0, T=5\]"):
      jax.jit(lambda x, l=lengths: unroll.rnn(LSTM, LSTM_PARAMS, x, l))(XS)
