"""The Flax module owns params in the pure cells' layout and calls unroll."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import cells, layers, unroll


@pytest.mark.parametrize("bidirectional", [False, True])
def test_module_equals_pure_functions(bidirectional):
  module = layers.RNN(cell="lstm", hidden_size=6, num_layers=2,
                      bidirectional=bidirectional)
  xs = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4))
  lengths = jnp.array([5, 0, 2])
  variables = module.init(jax.random.PRNGKey(1), xs, lengths)
  params = variables["params"]
  assert sorted(params) == ["layer_0", "layer_1"]
  first = params["layer_0"]["forward"] if bidirectional else params["layer_0"]
  assert first["w_ih"].shape == (4, 24) and first["w_hh"].shape == (6, 24)
  ys, finals = module.apply(variables, xs, lengths)
  want, want_finals = unroll.stacked(cells.lstm(), [params["layer_0"], params["layer_1"]],
                                     xs, lengths, bidirectional=bidirectional)
  assert ys.shape == (3, 5, 12 if bidirectional else 6)
  np.testing.assert_allclose(ys, want, atol=1e-6)
  jax.tree_util.tree_map(np.testing.assert_array_equal, finals, want_finals)


def test_dropout_needs_rng_and_is_off_when_deterministic():
  module = layers.RNN(cell="gru", hidden_size=8, num_layers=2, dropout_rate=0.5)
  xs = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 3))
  variables = module.init(jax.random.PRNGKey(1), xs)
  a, _ = module.apply(variables, xs)
  b, _ = module.apply(variables, xs, deterministic=False,
                      rngs={"dropout": jax.random.PRNGKey(2)})
  assert not np.allclose(a, b)


def test_init_scale_and_cell_options():
  module = layers.RNN(cell="lstm", hidden_size=8, init_scale=0.1,
                      cell_options={"forget_bias": 3.0})
  params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 3)))["params"]
  leaves = jax.tree_util.tree_leaves(params)
  assert all(float(jnp.max(jnp.abs(x))) <= 0.1 for x in leaves)
  assert float(jnp.std(params["layer_0"]["w_hh"])) > 0.03
  with pytest.raises(ValueError, match="unknown cell 'lstn'"):
    layers.RNN(cell="lstn", hidden_size=2).init(jax.random.PRNGKey(0),
                                                jnp.zeros((1, 2, 3)))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_learned_initial_state(bidirectional):
  module = layers.RNN(cell="lstm", hidden_size=4, num_layers=2,
                      bidirectional=bidirectional, learn_initial_state=True)
  xs = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 2))
  lengths = jnp.array([5, 0, 2])
  variables = module.init(jax.random.PRNGKey(1), xs, lengths)
  params = variables["params"]
  names = ["initial_0", "initial_1"]
  if bidirectional:
    names = [f"initial_{d}_{w}" for d in (0, 1) for w in ("backward", "forward")]
  assert sorted(k for k in params if k.startswith("initial")) == names
  # Zeros at init: the same as no learned state.
  plain = layers.RNN(cell="lstm", hidden_size=4, num_layers=2,
                     bidirectional=bidirectional)
  plain_vars = {"params": {k: v for k, v in params.items() if k.startswith("layer")}}
  np.testing.assert_allclose(module.apply(variables, xs, lengths)[0],
                             plain.apply(plain_vars, xs, lengths)[0], atol=1e-6)
  # A set state is what a zero-length sequence ends in, and gets gradients.
  key = "initial_0_forward" if bidirectional else "initial_0"
  params = jax.tree_util.tree_map(lambda a: a, params)
  params[key] = {"h": jnp.full((1, 4), 0.5), "c": jnp.full((1, 4), -0.25)}
  _, finals = module.apply({"params": params}, xs, lengths)
  first = finals[0][0] if bidirectional else finals[0]
  np.testing.assert_allclose(first.h[1], 0.5)
  np.testing.assert_allclose(first.c[1], -0.25)
  grads = jax.grad(lambda p: jnp.sum(module.apply({"params": p}, xs, lengths)[0]))(params)
  assert float(jnp.abs(grads[key]["h"]).sum()) > 0


def test_step_function_reproduces_the_whole_sequence():
  module = layers.RNN(cell="gru", hidden_size=5, num_layers=2)
  xs = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 2))
  variables = module.init(jax.random.PRNGKey(1), xs)
  ys, finals = module.apply(variables, xs)

  def stepped(module):
    step = module.step_function(xs.shape[-1])
    layer_0 = module.stack_params(xs.shape[-1]).layers[0]
    states, outputs = module.zero_states(xs.shape[0]), []
    for t in range(xs.shape[1]):
      states, h = step(states, module.cell_functions().project(layer_0, xs[:, t]))
      outputs.append(h)
    return jnp.stack(outputs, 1), states
  step_ys, step_finals = module.apply(variables, method=stepped)
  np.testing.assert_allclose(step_ys, ys, atol=1e-6)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                         step_finals, finals)
  with pytest.raises(ValueError, match="bidirectional"):
    layers.RNN(cell="gru", hidden_size=5, bidirectional=True).init(
        jax.random.PRNGKey(1), method=lambda m: m.step_function(2))
