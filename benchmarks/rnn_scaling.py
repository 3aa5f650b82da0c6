"""How time and compile time grow with sequence length and batch size.

  python -m benchmarks.rnn_scaling [--cell=lstm] [--steps=25,50,100,200,400,800] \
      [--batches=1,8,32,128,256] [--rounds=5]

For each T (batch 32, I=128, H=256) it prints the median training-step time
(forward + backward through time, this project's `unroll.rnn`), the ratio to
the previous T (2.0 = linear when T doubles), and the compile time (the first
call minus a warm call). Then, at T=100, the time per sequence for each batch
size, against Flax's nn.RNN in the same run.
"""

from __future__ import annotations

import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from models import cells, unroll

flags.DEFINE_string("cell", "lstm", "lstm or gru.")
flags.DEFINE_list("steps", ["25", "50", "100", "200", "400", "800"],
                  "Sequence lengths T.")
flags.DEFINE_list("batches", ["1", "8", "32", "128", "256"], "Batch sizes B.")
flags.DEFINE_integer("rounds", 5, "Repeats (median is reported).")

INPUTS, HIDDEN = 128, 256
_FLAX = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


def _train_fn(cell_name: str):
  cell = cells.get_cell(cell_name)

  def loss(p, x):
    return jnp.sum(unroll.rnn(cell, p, x)[0])
  return cell, jax.jit(jax.grad(loss, argnums=(0, 1)))


def _flax_train_fn(cell_name: str, xs):
  layer = nn.RNN(_FLAX[cell_name](features=HIDDEN))
  params = layer.init(jax.random.PRNGKey(0), xs)
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)),
                          argnums=(0, 1)))
  return lambda: jax.block_until_ready(grad(params, xs))


def _median_seconds(fn, rounds: int) -> float:
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv):
  del argv
  name, rounds = flags.FLAGS.cell, flags.FLAGS.rounds
  print(f"cell {name}, B=32 I={INPUTS} H={HIDDEN}, training step; "
        f"device {jax.devices()[0].device_kind}")
  print("| T | ms/step | ratio to previous T | compile s |")
  print("|---|---|---|---|")
  previous = None
  for steps in map(int, flags.FLAGS.steps):
    cell, grad = _train_fn(name)
    params = cell.init(jax.random.PRNGKey(0), INPUTS, HIDDEN)
    xs = jax.random.normal(jax.random.PRNGKey(1), (32, steps, INPUTS))
    run = lambda: jax.block_until_ready(grad(params, xs))
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    run()
    seconds = _median_seconds(run, rounds)
    ratio = "" if previous is None else f"{seconds / previous:.2f}"
    print(f"| {steps} | {seconds * 1e3:.1f} | {ratio} | "
          f"{first - seconds:.2f} |", flush=True)
    previous = seconds

  print(f"\nT=100: microseconds per sequence (training step / B)")
  print("| B | ours | flax | flax / ours |")
  print("|---|---|---|---|")
  for batch in map(int, flags.FLAGS.batches):
    cell, grad = _train_fn(name)
    params = cell.init(jax.random.PRNGKey(0), INPUTS, HIDDEN)
    xs = jax.random.normal(jax.random.PRNGKey(1), (batch, 100, INPUTS))
    ours = lambda: jax.block_until_ready(grad(params, xs))
    theirs = _flax_train_fn(name, xs)
    for fn in (ours, theirs):
      fn()
      fn()
    samples = {"ours": [], "flax": []}
    for _ in range(rounds):  # interleaved
      samples["ours"].append(_median_seconds(ours, 1))
      samples["flax"].append(_median_seconds(theirs, 1))
    mine, peer = (statistics.median(samples[k]) for k in ("ours", "flax"))
    print(f"| {batch} | {mine / batch * 1e6:.0f} | {peer / batch * 1e6:.0f} | "
          f"{peer / mine:.2f}x |", flush=True)


if __name__ == "__main__":
  app.run(main)
