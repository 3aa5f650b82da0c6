"""Independent numerical checks shared by the tests."""

import jax
import jax.numpy as jnp
import numpy as np


def check_directional_derivative(loss, grads, args, key, *, eps: float = 1e-6,
                                 rtol: float = 1e-6, err_msg: str = "") -> None:
  """Central finite difference of loss(args) along a random direction ==
  <grads, direction> (use float64 args)."""
  direction = jax.tree_util.tree_map(
      lambda p: jax.random.normal(key, p.shape, p.dtype), args)
  shifted = lambda sign: jax.tree_util.tree_map(
      lambda p, d: p + sign * eps * d, args, direction)
  numeric = (loss(shifted(1)) - loss(shifted(-1))) / (2 * eps)
  analytic = sum(jnp.sum(g * d) for g, d in zip(
      jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction)))
  np.testing.assert_allclose(analytic, numeric, rtol=rtol, err_msg=err_msg)
