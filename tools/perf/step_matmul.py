"""The recurrent matmul of one scan step, batch-major against feature-major.

  python -m tools.perf.step_matmul [--shape=small] [--matmul_rounds=15]

Times a scan of T steps whose body is the recurrent product and a tanh
(s' = tanh of the first H columns/rows of the product), in the two layouts
that `models/fused.py` uses: batch-major s [B, H] @ W [H, G*H] (its training
passes) and feature-major W^T [G*H, H] @ s^T [H, B] (its forward pass when
not differentiated). G = 4 (LSTM). Interleaved rounds; prints microseconds
per step, GFLOP/s of the product, and the paired ratio.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import rnn_speed, timing

flags.DEFINE_enum("shape", "small", sorted(rnn_speed.SHAPES), "Shape (B, H).")
flags.DEFINE_integer("matmul_rounds", 15, "Interleaved rounds.")
flags.DEFINE_integer("matmul_steps", 100, "Scan steps T.")

GATES = 4


def scan_fn(layout: str, batch: int, hidden: int, steps: int):
  """A jitted T-step scan of the recurrent product in `layout`."""
  def run(w):
    if layout == "batch-major":
      def body(s, _):
        return jnp.tanh((s @ w)[:, :hidden]), None
      s0 = jnp.full((batch, hidden), 0.1)
    else:
      w_t = w.T
      def body(s, _):
        return jnp.tanh((w_t @ s)[:hidden]), None
      s0 = jnp.full((hidden, batch), 0.1)
    return jax.lax.scan(body, s0, None, length=steps)[0]
  return jax.jit(run)


def main(argv):
  del argv
  f = flags.FLAGS
  batch, _, _, hidden = rnn_speed.SHAPES[f.shape]
  w = jax.random.normal(jax.random.PRNGKey(0), (hidden, GATES * hidden)) * 0.05
  fns = {layout: scan_fn(layout, batch, hidden, f.matmul_steps)
         for layout in ("batch-major", "feature-major")}
  a, b = (fn(w) for fn in fns.values())
  error = float(jnp.max(jnp.abs(a - b.T)))
  impls = {name: rnn_speed._compiled(fn, w).run  # pylint: disable=protected-access
           for name, fn in fns.items()}
  samples = timing.time_interleaved(impls, f.matmul_rounds, calls=1)
  flops = 2 * batch * hidden * GATES * hidden
  print(f"B={batch} H={hidden} G={GATES}, {f.matmul_steps} steps; largest "
        f"difference between the layouts: {error:.1e}")
  print("| layout | us/step | GFLOP/s | batch-major / this (paired) |")
  print("|---|---|---|---|")
  for name, times in samples.items():
    per_step = statistics.median(times) / f.matmul_steps
    print(f"| {name} | {per_step * 1e6:.1f} | {flops / per_step / 1e9:.1f} | "
          f"{timing.paired_ratio(times, samples['batch-major']):.2f}x |")


if __name__ == "__main__":
  app.run(main)
