"""The weight-gradient matmuls after the backward scan: whole or split by gate.

  python -m tools.perf.grad_matmuls [--grad_cells=lstm,gru] \
      [--grad_shapes=small,big] [--grad_rounds=15]

Times the matmuls `models/fused.py` runs after its backward scan (dW_hh,
dW_ih, db and dx from the gate gradients), in interleaved rounds, in the two
forms the backward scan could leave its gate gradients in for the same
memory:

- LSTM. whole: one [T, B, 4H] array; split: four [T, B, H] arrays
  (`_gram` and `_input_grads` take either).
- GRU. whole: d_gx = [d_rz, d_an] as one [T, B, 3H] array and d_an * r
  [T, B, H] (dW_hh then computes h^T d_an too and drops it); split: d_rz
  [T, B, 2H], d_an and d_an * r.

Prints the median time, the paired ratio and the largest difference between
the two forms' results. `models/fused.py` keeps the faster form of each
cell (point 8 of its docstring). Shapes as in rnn_speed.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import rnn_speed, timing
from models import fused

flags.DEFINE_list("grad_cells", ["lstm", "gru"], "Cells: lstm, gru.")
flags.DEFINE_list("grad_shapes", ["small", "big"], "Shapes (as in rnn_speed).")
flags.DEFINE_integer("grad_rounds", 15, "Interleaved rounds.")


def _lstm_whole(h, xs, w_ih, d_g):
  hidden = h.shape[-1]
  d_w_hh = fused._gram(h.reshape(-1, hidden), (d_g,))  # pylint: disable=protected-access
  return (d_w_hh,) + fused._input_grads(xs, w_ih, (d_g,))  # pylint: disable=protected-access


def _gru_whole(h, xs, w_ih, d_gx, d_an_r):
  hidden = h.shape[-1]
  grams = fused._gram(h.reshape(-1, hidden), (d_gx, d_an_r))  # pylint: disable=protected-access
  d_w_hh = jnp.concatenate([grams[:, :2 * hidden], grams[:, 3 * hidden:]], -1)
  return (d_w_hh,) + fused._input_grads(xs, w_ih, (d_gx,))  # pylint: disable=protected-access


def _split(h, xs, w_ih, gh_parts, gx_parts):
  hidden = h.shape[-1]
  d_w_hh = fused._gram(h.reshape(-1, hidden), gh_parts)  # pylint: disable=protected-access
  return (d_w_hh,) + fused._input_grads(xs, w_ih, gx_parts)  # pylint: disable=protected-access


def make_inputs(cell: str, shape):
  """(whole-form function and arguments, split-form arguments); the
  arguments hold the same gate gradients."""
  batch, steps, inputs, hidden = shape
  keys = iter(jax.random.split(jax.random.PRNGKey(0), 8))
  normal = lambda *s: jax.random.normal(next(keys), s)
  h, xs = normal(steps, batch, hidden), normal(steps, batch, inputs)
  if cell == "lstm":
    w_ih = normal(inputs, 4 * hidden)
    parts = tuple(normal(steps, batch, hidden) for _ in range(4))
    return ((_lstm_whole, (h, xs, w_ih, jnp.concatenate(parts, -1))),
            (h, xs, w_ih, parts, parts))
  w_ih = normal(inputs, 3 * hidden)
  d_rz, d_an, d_an_r = (normal(steps, batch, width * hidden)
                        for width in (2, 1, 1))
  return ((_gru_whole, (h, xs, w_ih, jnp.concatenate([d_rz, d_an], -1),
                        d_an_r)),
          (h, xs, w_ih, (d_rz, d_an_r), (d_rz, d_an)))


def measure(cell: str, shape_name: str, rounds: int) -> None:
  """Times both forms for one cell and shape; prints a table."""
  (whole, whole_args), split_args = make_inputs(cell,
                                                rnn_speed.SHAPES[shape_name])
  fns = {"whole": (jax.jit(whole), whole_args),
         "split": (jax.jit(_split), split_args)}
  results = [jax.tree_util.tree_leaves(fn(*args)) for fn, args in fns.values()]
  error = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
              for a, b in zip(*results))
  impls = {name: rnn_speed._compiled(fn, *args).run  # pylint: disable=protected-access
           for name, (fn, args) in fns.items()}
  samples = timing.time_interleaved(impls, rounds, calls=2)
  print(f"{cell} {shape_name}: weight-gradient matmuls after the backward "
        f"scan; largest relative difference whole/split: {error:.1e}")
  print("| form | ms | whole / this (paired) |")
  print("|---|---|---|")
  for name, times in samples.items():
    print(f"| {name} | {statistics.median(times) * 1e3:.1f} | "
          f"{timing.paired_ratio(times, samples['whole']):.3f}x |", flush=True)


def main(argv):
  del argv
  f = flags.FLAGS
  for cell in f.grad_cells:
    if cell not in ("lstm", "gru"):
      raise app.UsageError(f"--grad_cells: expected lstm or gru, got {cell!r}")
    for shape_name in f.grad_shapes:
      if shape_name not in rnn_speed.SHAPES:
        raise app.UsageError(f"--grad_shapes: expected one of "
                             f"{sorted(rnn_speed.SHAPES)}, got {shape_name!r}")
      measure(cell, shape_name, f.grad_rounds)


if __name__ == "__main__":
  app.run(main)
