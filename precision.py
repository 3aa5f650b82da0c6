"""Mixed precision: compute in config.compute_dtype, keep float32 masters.

The train state (params, optimiser state, EMA, carry) stays float32. Each
step casts the params, the batch's floating inputs and the carry to the
compute dtype, runs the model in it, and casts the outputs and the new carry
back to float32 before the loss, so losses, gradients and updates are
float32. Integer and boolean leaves (token ids, lengths, masks) are never
cast.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

# bfloat16 has float32's exponent range, so gradients need no loss scaling;
# float16 would need it and is not offered.
COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(config) -> jnp.dtype:
  """config.compute_dtype as a dtype (float32 when the config has no key)."""
  name = config.get("compute_dtype", "float32")
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype: expected one of {list(COMPUTE_DTYPES)}, "
                     f"got {name!r}")
  return jnp.dtype(name)


def cast_floating(tree: Any, dtype) -> Any:
  """`tree` with every floating-point array leaf cast to `dtype`; other
  leaves (integers, booleans, Python objects) unchanged."""
  def cast(leaf):
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating):
      return leaf.astype(dtype)
    return leaf
  return jax.tree_util.tree_map(cast, tree)
